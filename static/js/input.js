// Pointer and keyboard input of the annotate page -> annotator actions. Left click: positive
// point; right click or shift+click: negative point. A press that moves more than a few
// pixels before release is not a click (room for box drags, issue 4).

import { clientToImage } from "./geometry.js";
import { keyAction } from "./shortcuts.js";

const CLICK_SLOP_PX = 5;

const NON_TEXT_INPUTS = new Set(["radio", "checkbox", "button", "submit", "reset", "range", "color"]);

/** Keys typed into a text field are not shortcuts. */
function isTyping(t) {
  if (!t || !t.tagName) return false;
  if (t.tagName === "INPUT") return !NON_TEXT_INPUTS.has((t.type || "text").toLowerCase());
  return t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable;
}

/**
 * target: the element receiving clicks; size(): [imageWidth, imageHeight] or null;
 * actions: {point(x, y, label, t0), accept(), clear(), undo(), redo(), category(i), cycle(), help()}.
 */
export function bindInput(target, size, actions, helpOpen = () => false) {
  let down = null;

  target.addEventListener("contextmenu", (ev) => ev.preventDefault());

  target.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 && ev.button !== 2) return;
    ev.preventDefault();
    down = { x: ev.clientX, y: ev.clientY, button: ev.button, id: ev.pointerId };
  });

  target.addEventListener("pointerup", (ev) => {
    const d = down;
    down = null;
    if (!d || ev.button !== d.button || ev.pointerId !== d.id) return;
    if (Math.hypot(ev.clientX - d.x, ev.clientY - d.y) > CLICK_SLOP_PX) return;
    const dims = size();
    if (!dims) return;
    const p = clientToImage(ev.clientX, ev.clientY, target.getBoundingClientRect(), dims[0], dims[1]);
    const label = ev.button === 2 || ev.shiftKey ? 0 : 1;
    actions.point(p.x, p.y, label, performance.now());
  });

  target.addEventListener("pointercancel", () => {
    down = null;
  });

  document.addEventListener("keydown", (ev) => {
    if (isTyping(ev.target)) return;
    const a = keyAction(ev);
    if (!a) return;
    if (a.id === "clear" && helpOpen()) {
      ev.preventDefault();
      actions.help();
      return;
    }
    if (ev.repeat && a.id !== "undo" && a.id !== "redo") return;
    ev.preventDefault();
    if (a.id === "category") actions.category(a.arg);
    else actions[a.id]();
  });
}
