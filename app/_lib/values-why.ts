/**
 * Why a process's values (state, messages, dictionary values) are not shown,
 * in one sentence for the drawer and the CLI alike: the node did not send them
 * (the agent's get_state setting), or the caller's role may not see them
 * (the server's `processes.valuesRole` setting, server/agents/process-values.ts).
 */
export function valuesHiddenWhy(hiddenBelow: string | null): string {
  return hiddenBelow ? `your role may not see process values (${hiddenBelow} and up may; an admin sets this under Admin → Process values)` : "the agent's get_state setting is off";
}

/** Why the state is not shown, from the agent's `state.error` (or the server's "role"). */
export function stateHiddenWhy(error: string, hiddenBelow: string | null): string {
  const why: Record<string, string> = {
    disabled: "reading process state is disabled in the agent's configuration (get_state)",
    timeout: "the process did not answer sys:get_state within 1 s",
    not_otp: "not an OTP (sys-compliant) process",
    role: valuesHiddenWhy(hiddenBelow),
  };
  return `not shown: ${why[error] ?? error}`;
}
