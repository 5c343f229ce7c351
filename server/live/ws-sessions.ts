/**
 * The browser and CLI WebSocket connections of this instance with the
 * principal each authenticated as. Re-checked every 15 s and at once after
 * logouts and revocations on this instance; a connection whose credentials
 * no longer hold is closed with 4401, so its subscriptions end too.
 */
import type { WebSocket } from "ws";
import type { PrismaClient } from "../../generated/prisma/client";
import type { Principal } from "../auth/principal";
import { stillValid } from "../auth/revalidate";

export class WsSessions {
  private readonly sockets = new Map<WebSocket, Principal>();
  private timer: NodeJS.Timeout | null = null;
  private sweeping = false;

  constructor(private readonly prisma: PrismaClient) {}

  track(ws: WebSocket, principal: Principal | null): void {
    if (!principal) return;
    this.sockets.set(ws, principal);
    ws.once("close", () => this.sockets.delete(ws));
  }

  start(everyMs = 15_000): void {
    this.timer = setInterval(() => void this.sweep(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  get size(): number {
    return this.sockets.size;
  }

  /** Close every socket whose principal is no longer valid; returns how many. */
  async sweep(): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    let closed = 0;
    try {
      for (const [ws, p] of [...this.sockets]) {
        if (await stillValid(this.prisma, p).catch(() => true)) continue;
        this.sockets.delete(ws);
        ws.close(4401, "session ended or credentials revoked");
        closed += 1;
      }
    } finally {
      this.sweeping = false;
    }
    return closed;
  }
}
