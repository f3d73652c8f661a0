// Brush and eraser on the annotator: a stroke is painted into the edit layer segment by
// segment while the pointer moves (only the display pixels it touches are repainted), then
// logged as one "stroke" (brush) or "erase" event {path, radius} and pushed on the history.
// The edit layer always equals the draft's strokes, rebuilt after undo/redo/clear.

import { EditLayer, StrokeBuilder } from "./strokes.js";

export { EditLayer };

const methods = {
  /** Keep the edit layer equal to the draft's strokes (plus the one being drawn). */
  syncEdits(d) {
    const sig = d.strokes.map((s) => s.path);
    if (this.live) sig.push(this.live.stroke.path);
    const same = sig.length === this.editSig.length && sig.every((p, i) => p === this.editSig[i]);
    if (same) return;
    this.edits.rebuild(d.strokes);
    if (this.live) this.edits.paint(this.live.stroke);
    this.editSig = sig;
  },

  strokeStart(kind, x, y) {
    if (!this.image) return;
    this.hoverResult = null;
    this.live = new StrokeBuilder(kind, this.radius, x, y);
    this.redraw(null, { light: true });
  },

  strokeMove(x, y) {
    if (!this.live) return;
    const r = this.live.add(x, y);
    if (!r) return;
    const box = this.edits.paint(this.live.stroke, r[0], r[1]);
    if (box) this.redraw(null, { box, light: true });
  },

  strokeEnd(x, y) {
    if (!this.live) return;
    this.strokeMove(x, y);
    const r = this.live.add(x, y, true);
    if (r) this.edits.paint(this.live.stroke, r[0], r[1]);
    const s = this.live.stroke;
    this.live = null;
    this.counters.strokes++;
    this.step(s.kind, { path: s.path, radius: s.radius });
    this.redraw();
    this.saveDraft();
  },
};

/** Add the brush and eraser to the Annotator class. */
export function installStrokes(cls) {
  Object.assign(cls.prototype, methods);
}
