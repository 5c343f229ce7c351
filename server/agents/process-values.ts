/**
 * Who may see a process's values — its state, the messages in its mailbox
 * and its dictionary's values — once the node sends them (the agent's
 * `get_state` setting decides that, on the node). Messages hold the same data
 * as state, so one rule covers all three: the least role is an admin setting
 * (`processes.valuesRole`, operator by default), enforced here, on the
 * server, for every caller (browser, CLI, API). Leak hints, counts, keys and
 * the stack stay visible to every role: they carry shapes, not values.
 */
import { hasRole, type Role } from "../auth/roles";
import type { ProcessDetail } from "./replies";

/** The state's `error` when the caller's role hides it (the UI and CLI name the role needed). */
export const HIDDEN_BY_ROLE = "role";

export type ShownDetail = ProcessDetail & {
  /** The least role that sees values, when the caller's is lower; null: nothing was hidden from this caller. */
  valuesHiddenBelow: Role | null;
};

/** proc_lib's own keys, printed as the agent prints keys: shown with get_state off too (they name code, not data). */
const CODE_KEYS = new Set(["'$initial_call'", "'$ancestors'"]);

/** `detail` as `role` may see it when `least` is the least role allowed values. */
export function valuesFor(detail: ProcessDetail, role: Role, least: Role): ShownDetail {
  if (hasRole(role, least)) return { ...detail, valuesHiddenBelow: null };
  const state = detail.state && !("error" in detail.state) ? { error: HIDDEN_BY_ROLE } : detail.state;
  const mailbox = detail.mailbox && detail.mailbox.status === "shown" ? { ...detail.mailbox, status: "hidden" as const, messages: [] } : detail.mailbox;
  const dictionary = detail.dictionary.map((e) => (CODE_KEYS.has(e.key) ? e : { ...e, value: null }));
  return { ...detail, state, mailbox, dictionary, dictionaryValues: "hidden", valuesHiddenBelow: least };
}
