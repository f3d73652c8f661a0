// Every shortcut of the annotate page, in one table: the key handler and the help overlay
// both read it, so the help cannot drift from what the keys do.

export const SHORTCUTS = [
  { keys: "Left click", action: "Add a positive point (foreground)" },
  { keys: "Right click / Shift + click", action: "Add a negative point (background)" },
  { keys: "Enter", action: "Accept the mask with the selected category", id: "accept" },
  { keys: "Esc", action: "Clear the prompts of the current mask (undoable); close this help", id: "clear" },
  { keys: "Ctrl + Z", action: "Undo", id: "undo" },
  { keys: "Ctrl + Shift + Z / Ctrl + Y", action: "Redo", id: "redo" },
  { keys: "1 … 9", action: "Select category 1 … 9", id: "category" },
  { keys: "M", action: "Next candidate mask after a single click (the best predicted IoU is preselected)", id: "cycle" },
  { keys: "? / H", action: "Show or hide this help", id: "help" },
];

/** A keydown event -> {id, arg?} of the action it triggers, or null. */
export function keyAction(ev) {
  const ctrl = ev.ctrlKey || ev.metaKey;
  const key = ev.key;
  if (ctrl && !ev.altKey) {
    const k = key.toLowerCase();
    if (k === "z") return { id: ev.shiftKey ? "redo" : "undo" };
    if (k === "y") return { id: "redo" };
    return null;
  }
  if (ev.altKey) return null;
  if (key === "Enter") return { id: "accept" };
  if (key === "Escape") return { id: "clear" };
  if (key === "?" || key === "h" || key === "H") return { id: "help" };
  if (key === "m" || key === "M") return { id: "cycle" };
  if (/^[1-9]$/.test(key)) return { id: "category", arg: Number(key) - 1 };
  return null;
}
