/**
 * The error catalogue: one code per thing that can go wrong for a caller,
 * each with the tRPC code it maps to. Messages are one line, for people.
 */
import { TRPCError } from "@trpc/server";

type TrpcCode = ConstructorParameters<typeof TRPCError>[0]["code"];

export const ERRORS = {
  BD_UNAUTHENTICATED: { trpc: "UNAUTHORIZED", message: "not logged in (log in, or pass an API token)" },
  BD_BAD_CREDENTIALS: { trpc: "UNAUTHORIZED", message: "wrong username or password" },
  BD_ACCOUNT_LOCKED: { trpc: "TOO_MANY_REQUESTS", message: "account locked after repeated failed logins" },
  BD_RATE_LIMITED: { trpc: "TOO_MANY_REQUESTS", message: "too many login attempts from this address" },
  BD_TOKEN_INVALID: { trpc: "UNAUTHORIZED", message: "API token not recognised" },
  BD_TOKEN_EXPIRED: { trpc: "UNAUTHORIZED", message: "API token expired" },
  BD_TOKEN_REVOKED: { trpc: "UNAUTHORIZED", message: "API token revoked" },
  BD_FORBIDDEN: { trpc: "FORBIDDEN", message: "your role does not allow this" },
  BD_NODE_UNKNOWN: { trpc: "NOT_FOUND", message: "no such node" },
  BD_NODE_OFFLINE: { trpc: "PRECONDITION_FAILED", message: "node is not connected" },
  BD_NODE_ELSEWHERE: { trpc: "PRECONDITION_FAILED", message: "node is connected to another server instance" },
  BD_OWNER_UNREACHABLE: { trpc: "BAD_GATEWAY", message: "the server instance holding this node did not answer" },
  BD_AGENT_TIMEOUT: { trpc: "TIMEOUT", message: "the agent did not answer in time" },
  BD_AGENT_ERROR: { trpc: "BAD_REQUEST", message: "the agent refused the request" },
  BD_AGENT_BAD_REPLY: { trpc: "BAD_GATEWAY", message: "the agent's reply does not match the protocol" },
  BD_NOT_FOUND: { trpc: "NOT_FOUND", message: "not found" },
  BD_CONFLICT: { trpc: "CONFLICT", message: "conflict" },
  BD_BAD_INPUT: { trpc: "BAD_REQUEST", message: "bad input" },
  BD_GATE_REQUIRED: { trpc: "BAD_REQUEST", message: "this step kills processes or has error findings: accept the reviewed plan, bound the kills or accept the findings" },
} as const satisfies Record<string, { trpc: TrpcCode; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** Where a code is explained: its section of docs/errors.md (a unit test keeps every code documented). */
export function errorDoc(code: ErrorCode): string {
  return `docs/errors.md#${code.toLowerCase()}`;
}

/** A catalogued error; `detail` replaces the default message when given. */
export class BeamdeckError extends Error {
  constructor(
    readonly code: ErrorCode,
    detail?: string,
    readonly data?: Record<string, unknown>,
  ) {
    super(detail ?? ERRORS[code].message);
    this.name = "BeamdeckError";
  }
}

export function toTrpcError(e: BeamdeckError): TRPCError {
  return new TRPCError({ code: ERRORS[e.code].trpc, message: e.message, cause: e });
}

export function fail(code: ErrorCode, detail?: string, data?: Record<string, unknown>): never {
  throw toTrpcError(new BeamdeckError(code, detail, data));
}
