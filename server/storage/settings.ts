/**
 * Admin settings stored in the database (one row per key), each with its
 * schema and default here, so every instance reads the same value.
 */
import { z } from "zod";
import { roleSchema } from "../auth/roles";
import type { PrismaClient } from "../../generated/prisma/client";

export const SETTINGS = {
  // Issue 10, item 14: loopback, link-local and private-network webhook targets.
  "webhooks.allowPrivateTargets": { schema: z.boolean(), default: false },
  // Issue 14, item 3: the least role that sees process state, messages and dictionary values (server/agents/process-values.ts).
  "processes.valuesRole": { schema: roleSchema, default: "operator" },
} as const;

export type SettingKey = keyof typeof SETTINGS;
type ValueOf<K extends SettingKey> = z.infer<(typeof SETTINGS)[K]["schema"]>;

export async function getSetting<K extends SettingKey>(prisma: PrismaClient, key: K): Promise<ValueOf<K>> {
  const row = await prisma.setting.findUnique({ where: { key } });
  const parsed = row ? SETTINGS[key].schema.safeParse(row.value) : null;
  return (parsed?.success ? parsed.data : SETTINGS[key].default) as ValueOf<K>;
}

export async function setSetting<K extends SettingKey>(prisma: PrismaClient, key: K, value: ValueOf<K>, by: string): Promise<void> {
  const v = SETTINGS[key].schema.parse(value);
  await prisma.setting.upsert({ where: { key }, create: { key, value: v, updatedBy: by }, update: { value: v, updatedBy: by } });
}
