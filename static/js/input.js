// Pointer and keyboard input of the annotate page -> annotator actions. Point tool: left
// click positive point, right or shift+click negative point, left drag a box, plain moves the
// hover preview. Brush/eraser: left drag paints/erases, right drag the opposite. Everywhere:
// alt+click reopens the mask under the pointer, wheel zooms, space+drag or middle drag pans.
// Coordinates reach the annotator in image pixels (through the current view).

import { normBox } from "./prompts.js";
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
 * target: the element receiving the pointer; ctl: {size(), toImage(cx, cy), tool(), annotator,
 * view: {zoomAt(cx, cy, f), pan(dx, dy)}, actions: {id: (arg, ev) => ...}}.
 */
export function bindInput(target, ctl, helpOpen = () => false) {
  let drag = null; // {mode: press|box|stroke|pan, x, y, button, id, start}
  let space = false;
  const a = ctl.annotator;
  const img = (ev) => ctl.toImage(ev.clientX, ev.clientY);

  target.addEventListener("contextmenu", (ev) => ev.preventDefault());

  target.addEventListener("pointerdown", (ev) => {
    if (!ctl.size() || drag) return;
    ev.preventDefault();
    const base = { x: ev.clientX, y: ev.clientY, button: ev.button, id: ev.pointerId, start: img(ev) };
    if (ev.button === 1 || (ev.button === 0 && space)) drag = { ...base, mode: "pan" };
    else if (ev.button === 0 && ev.altKey) {
      a.selectAt(base.start.x, base.start.y);
      return;
    } else if (ev.button !== 0 && ev.button !== 2) return;
    else if (ctl.tool() === "point") drag = { ...base, mode: "press" };
    else {
      const erase = (ctl.tool() === "eraser") === (ev.button === 0);
      drag = { ...base, mode: "stroke" };
      a.strokeStart(erase ? "erase" : "stroke", base.start.x, base.start.y);
    }
    if (drag.mode !== "press") a.hover(null, null);
    target.setPointerCapture(ev.pointerId);
  });

  target.addEventListener("pointermove", (ev) => {
    if (!ctl.size()) return;
    const p = img(ev);
    if (!drag) {
      if (ctl.tool() === "point") a.hover(p.x, p.y);
      else a.setOverlay({ cursor: { x: p.x, y: p.y, radius: a.radius, erase: ctl.tool() === "eraser" } });
      return;
    }
    if (ev.pointerId !== drag.id) return;
    if (drag.mode === "pan") {
      ctl.view.pan(ev.clientX - drag.x, ev.clientY - drag.y);
      drag.x = ev.clientX;
      drag.y = ev.clientY;
    } else if (drag.mode === "stroke") {
      for (const e of ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev]) {
        const q = img(e);
        a.strokeMove(q.x, q.y);
      }
      a.setOverlay({ cursor: { x: p.x, y: p.y, radius: a.radius, erase: ctl.tool() === "eraser" } });
    } else if (drag.mode === "press" && drag.button === 0) {
      if (Math.hypot(ev.clientX - drag.x, ev.clientY - drag.y) > CLICK_SLOP_PX) {
        drag.mode = "box";
        a.hover(null, null);
      }
    }
    if (drag.mode === "box") a.setOverlay({ band: normBox(drag.start, p, ...ctl.size()) });
  });

  const finish = (ev, cancelled) => {
    const d = drag;
    if (!d || ev.pointerId !== d.id) return;
    drag = null;
    const p = img(ev);
    if (d.mode === "stroke") a.strokeEnd(p.x, p.y);
    if (cancelled) return a.setOverlay({ band: null });
    if (d.mode === "box") {
      a.setOverlay({ band: null });
      a.box(normBox(d.start, p, ...ctl.size()));
    } else if (d.mode === "press" && ev.button === d.button) {
      if (Math.hypot(ev.clientX - d.x, ev.clientY - d.y) > CLICK_SLOP_PX) return undefined;
      a.point(p.x, p.y, ev.button === 2 || ev.shiftKey ? 0 : 1, ev.timeStamp); // same clock as performance.now()
    }
    return undefined;
  };
  target.addEventListener("pointerup", (ev) => finish(ev, false));
  target.addEventListener("pointercancel", (ev) => finish(ev, true));
  target.addEventListener("pointerleave", () => {
    if (!drag) {
      a.hover(null, null);
      a.setOverlay({ cursor: null });
    }
  });

  target.addEventListener(
    "wheel",
    (ev) => {
      if (!ctl.size()) return;
      ev.preventDefault();
      ctl.view.zoomAt(ev.clientX, ev.clientY, Math.exp(-ev.deltaY * 0.0015));
    },
    { passive: false },
  );

  document.addEventListener("keyup", (ev) => {
    if (ev.key === " ") space = false;
  });
  document.addEventListener("keydown", (ev) => {
    if (isTyping(ev.target)) return;
    if (ev.key === " ") {
      space = true;
      ev.preventDefault();
      return;
    }
    const k = keyAction(ev);
    if (!k) return;
    if (k.id === "clear" && helpOpen()) {
      ev.preventDefault();
      ctl.actions.help();
      return;
    }
    if (ev.repeat && !["undo", "redo", "radius", "zoom"].includes(k.id)) return;
    ev.preventDefault();
    const fn = ctl.actions[k.id];
    if (fn) fn(k.arg, ev);
  });
}
