// Every shortcut of the annotate page, in one table: the key handler and the help overlay
// both read it, so the help cannot drift from what the keys do.

export const SHORTCUTS = [
  { keys: "Left click", action: "Add a positive point (foreground) with the point tool" },
  { keys: "Right click / Shift + click", action: "Add a negative point (background)" },
  { keys: "Left drag", action: "Draw a box with the point tool; a box and points combine (box + points)" },
  { keys: "Hover", action: "Before the first prompt of a mask: preview the mask a left click would give" },
  { keys: "T", action: "Turn the hover preview off or on", id: "preview" },
  { keys: "P", action: "Point and box tool", id: "tool", arg: "point" },
  { keys: "B", action: "Brush: paint pixels into the mask (right drag erases)", id: "tool", arg: "brush" },
  { keys: "E", action: "Eraser: remove pixels from the mask (right drag paints)", id: "tool", arg: "eraser" },
  { keys: "[ / ]", action: "Smaller / larger brush and eraser (radius in image pixels)", id: "radius" },
  { keys: "Enter", action: "Accept the mask; pixels a visible accepted mask holds stay that mask's", id: "accept" },
  { keys: "Shift + Enter", action: "Accept the mask as drawn, overlapping accepted masks", id: "acceptOverlap" },
  { keys: "Esc", action: "Clear the current mask or stop editing (undoable); close this help", id: "clear" },
  { keys: "Ctrl + Z", action: "Undo: points, boxes, strokes, choices, accept, delete, category change", id: "undo" },
  { keys: "Ctrl + Shift + Z / Ctrl + Y", action: "Redo", id: "redo" },
  { keys: "1 … 9", action: "Select category 1 … 9", id: "category" },
  { keys: "M", action: "Next candidate mask after a single click (the best predicted IoU is preselected)", id: "cycle" },
  { keys: "Alt + click", action: "Edit the accepted mask under the pointer (also: Edit in the mask list)" },
  { keys: "Delete", action: "Delete the mask being edited (the list has a delete button per mask)", id: "deleteMask" },
  { keys: "Wheel / + / -", action: "Zoom in or out (the wheel zooms at the pointer)", id: "zoom" },
  { keys: "0", action: "Fit the whole image", id: "fit" },
  { keys: "Space + drag / middle drag", action: "Pan the zoomed image" },
  { keys: "N", action: "Next image: marks this one done (accept or clear the current mask first)", id: "next" },
  { keys: "Shift + N", action: "Previous image (the one opened before this one)", id: "previous" },
  { keys: "S", action: "Skip this image: give a reason, it leaves the queue", id: "skip" },
  { keys: "? / H", action: "Show or hide this help", id: "help" },
];

const SIMPLE = {
  Escape: { id: "clear" },
  "?": { id: "help" },
  h: { id: "help" },
  H: { id: "help" },
  m: { id: "cycle" },
  M: { id: "cycle" },
  t: { id: "preview" },
  p: { id: "tool", arg: "point" },
  b: { id: "tool", arg: "brush" },
  e: { id: "tool", arg: "eraser" },
  "[": { id: "radius", arg: -1 },
  "]": { id: "radius", arg: 1 },
  Delete: { id: "deleteMask" },
  Backspace: { id: "deleteMask" },
  "+": { id: "zoom", arg: 1 },
  "=": { id: "zoom", arg: 1 },
  "-": { id: "zoom", arg: -1 },
  0: { id: "fit" },
  n: { id: "next" },
  N: { id: "previous" },
  s: { id: "skip" },
};

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
  if (key === "Enter") return { id: ev.shiftKey ? "acceptOverlap" : "accept" };
  if (/^[1-9]$/.test(key)) return { id: "category", arg: Number(key) - 1 };
  return SIMPLE[key] || null;
}
