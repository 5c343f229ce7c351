/**
 * What a step's result says about deaths: the pids the agent saw die, and
 * its comparison of prediction against deaths (read here, compared only by
 * the agent).
 */
import type { StepResult } from "../agents/replies";
import type { Comparison } from "./stored";

/** Pids the agent saw die during a step (its `deaths`, both kinds). */
export function diedPids(result: StepResult): string[] {
  const d = result?.deaths;
  if (!d) return [];
  return [...d.predictedAndDied, ...d.diedUnpredicted].map((x) => x.pid);
}

/**
 * Prediction against deaths, as the agent compared them (beamdeck_agent_deaths,
 * the one place that compares): its runner recomputed the plan the gate
 * accepted just before the step and watched exactly those processes.
 */
export function predictionComparison(result: StepResult): Comparison | null {
  const d = result?.deaths;
  if (!d) return null;
  const pids = (list: { pid: string }[]) => list.map((x) => x.pid);
  return { predictedAndDied: pids(d.predictedAndDied), predictedButAlive: pids(d.predictedButAlive), diedUnpredicted: pids(d.diedUnpredicted) };
}
