/**
 * GET /api/audit/export?format=csv|json&actor=&node=&action=&from=&to=
 * The audit log as a file download, for auditors. Viewer role and up;
 * the export itself is audited.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { appendAudit } from "../audit/log";
import { auditFilter, listAudit, toCsv } from "../audit/query";
import { actorOf } from "../auth/principal";
import { hasRole } from "../auth/roles";
import { authenticate } from "../context";
import type { Services } from "../services";

const MAX_ROWS = 100_000;

export async function auditExport(services: Services, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const { principal, authError } = await authenticate(services, req);
  if (!principal || !hasRole(principal.role, "viewer")) {
    res.writeHead(401, { "content-type": "text/plain" });
    return void res.end(`${authError?.message ?? "not logged in"}\n`);
  }
  const format = url.searchParams.get("format") ?? "csv";
  const parsed = auditFilter.safeParse(Object.fromEntries([...url.searchParams].filter(([k]) => k !== "format")));
  if ((format !== "csv" && format !== "json") || !parsed.success) {
    res.writeHead(400, { "content-type": "text/plain" });
    return void res.end(`bad export request: ${parsed.success ? `format must be csv or json` : parsed.error.issues[0]?.message}\n`);
  }
  const entries = [];
  let before: string | undefined;
  while (entries.length < MAX_ROWS) {
    const page = await listAudit(services.prisma, parsed.data, 1000, before);
    entries.push(...page.entries);
    if (!page.nextBefore) break;
    before = page.nextBefore;
  }
  await appendAudit(services.prisma, { actor: actorOf(principal), action: "audit.export", outcome: "ok", data: { format, filter: parsed.data, rows: entries.length } });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  res.writeHead(200, {
    "content-type": format === "csv" ? "text/csv; charset=utf-8" : "application/json",
    "content-disposition": `attachment; filename="beamdeck-audit-${stamp}.${format}"`,
  });
  res.end(format === "csv" ? toCsv(entries) : JSON.stringify(entries, null, 2));
}
