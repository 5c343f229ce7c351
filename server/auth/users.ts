/** Users: creation, listing, role changes. */
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";
import { accountDelayedUntil } from "./login-throttle";
import { hashPassword, MIN_PASSWORD_LENGTH } from "./passwords";
import { asRole, type Role } from "./roles";
import { newPassword } from "./secrets";
import { z } from "zod";

export const usernameSchema = z
  .string()
  .min(2)
  .max(64)
  .regex(/^[A-Za-z0-9._@-]+$/, "letters, digits and . _ @ - only");

export interface CreatedUser {
  id: string;
  username: string;
  role: Role;
  password: string;
  generated: boolean;
}

export async function createUser(prisma: PrismaClient, input: { username: string; role: Role; password?: string; createdBy?: string }): Promise<CreatedUser> {
  const username = usernameSchema.parse(input.username);
  const generated = !input.password;
  const password = input.password ?? newPassword();
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new BeamdeckError("BD_BAD_INPUT", `password must have at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (await prisma.user.findUnique({ where: { username } })) {
    throw new BeamdeckError("BD_CONFLICT", `user ${username} already exists`);
  }
  const user = await prisma.user.create({
    data: { username, role: input.role, passwordHash: await hashPassword(password), createdBy: input.createdBy ?? null },
  });
  return { id: user.id, username, role: input.role, password, generated };
}

export async function listUsers(prisma: PrismaClient) {
  const users = await prisma.user.findMany({ orderBy: { createdAt: "asc" } });
  const delays = new Map<string, Date>();
  for (const u of users) {
    const until = await accountDelayedUntil(prisma, u.username);
    if (until) delays.set(u.username, until);
  }
  return users.map((u) => ({
    id: u.id,
    username: u.username,
    role: asRole(u.role),
    createdAt: u.createdAt,
    createdBy: u.createdBy,
    disabled: u.disabledAt !== null,
    // Not a lock any more: when the account's next password check is allowed, if delayed.
    lockedUntil: delays.get(u.username) ?? null,
  }));
}
