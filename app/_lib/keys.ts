/**
 * Keyboard activation for rows and cells that act on a click (ARIA rows,
 * tree items, sortable headers): Enter or Space does what the click does.
 */
import type { KeyboardEvent } from "react";

export function onEnterOrSpace(act: () => void): (e: KeyboardEvent) => void {
  return (e) => {
    if (e.key !== "Enter" && e.key !== " ") return;
    e.preventDefault();
    act();
  };
}
