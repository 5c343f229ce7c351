/**
 * The synthetic agent for tests lives in tools/loadgen/agent.ts (one
 * implementation for tests, the load generator and the scale bench); this
 * keeps the tests' import path.
 *
 * `tsx tests/support/synthetic-agent.ts URL TOKEN [NODE] [COUNT]`: one
 * synthetic node as a load source for UI work (many: tools/loadgen/main.ts).
 */
import { startSyntheticAgent } from "../../tools/loadgen/agent";

export { HOT_MAILBOX, type SyntheticAgent, type SyntheticAgentOptions, type SyntheticRecord, startSyntheticAgent, WARM_MAILBOX } from "../../tools/loadgen/agent";

if (import.meta.url === `file://${process.argv[1]}`) {
  const [url, token, node = "synth@localhost", count = "100000"] = process.argv.slice(2);
  if (!url || !token) {
    console.error("usage: tsx tests/support/synthetic-agent.ts ws://HOST:PORT/agent AGENT_TOKEN [NODE] [COUNT]");
    process.exit(2);
  }
  const agent = await startSyntheticAgent({ url, token, node, processCount: Number(count) });
  console.log(`synthetic agent ${node}: ${agent.size} processes; hot ${agent.hotPid}, warm ${agent.warmPid}`);
  const stop = () => void agent.disconnect().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
