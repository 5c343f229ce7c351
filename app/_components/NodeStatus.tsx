/** A node's connection state as the lists show it: connected (and where), or since when it is gone. */
import { ago, dateTime } from "../_lib/format";

export function NodeStatus({ connected, instance, lastSeenAt, now }: { connected: boolean; instance: string | null; lastSeenAt: number; now: number }) {
  return connected ? (
    <span className="status status-up" data-testid="node-status">
      connected{instance ? ` (instance ${instance})` : ""}
    </span>
  ) : (
    <span className="status status-down" data-testid="node-status" title={dateTime(lastSeenAt)}>
      disconnected · last seen {ago(lastSeenAt, now)}
    </span>
  );
}
