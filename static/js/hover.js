// The hover preview: while the pointer moves over the image with no prompt yet, the mask a
// left click there would give is decoded (hover lane of the decoder scheduler: only the
// newest position waits, stale positions are never decoded) and shown. A click exactly where
// the last preview was decoded reuses that decode (its mask appears at once); a click where a
// preview is being decoded waits for that decode instead of starting another.

import { promptRequest } from "./prompts.js";
import { mark } from "./status.js";

const methods = {
  /** Hover preview of a positive point at (x, y) (null: the pointer left); latest wins. */
  hover(x, y) {
    if (x === null || !this.preview) {
      const had = this.hoverPos;
      this.hoverPos = null;
      if (had) this.redraw(null, { light: true });
      return;
    }
    if (!this.image || !this.history.draft().hoverable) return;
    const was = this.hoverPos;
    this.hoverPos = { x, y };
    if (this.previewFor(x, y)) {
      // Decoded or being decoded here already (the pointer came back, or a click's own move).
      if (!was && this.hoverResult) this.redraw(null, { light: true });
      return;
    }
    const [w, h] = this.size;
    const key = this.key;
    let flight = null;
    this.decoder
      .schedule(() => {
        const pos = this.hoverPos;
        if (!pos || this.key !== key || !this.history.draft().hoverable) return null;
        if (this.previewFor(pos.x, pos.y)) return null; // the pointer came back: nothing new
        let done;
        flight = { x: pos.x, y: pos.y, key, promise: new Promise((r) => (done = r)) };
        flight.done = done;
        this.hoverFlight = flight;
        return { key, req: promptRequest([{ x: pos.x, y: pos.y, label: 1 }], null, null, w, h) };
      }, "hover")
      .then((res) => {
        if (!flight) return;
        if (this.hoverFlight === flight) this.hoverFlight = null;
        const ok = res.type === "decoded" && res.key === this.key;
        const i = res.index;
        const { masks, iou, decodeMs, full, unsnapped, guide, prompt } = res;
        const result = ok ? { masks, iou, index: i, decodeMs, full, unsnapped, guide, prompt } : null;
        flight.done(result);
        if (!ok) return;
        this.hoverResult = { x: flight.x, y: flight.y, ...result, logits: res.masks.subarray(i * 65536, (i + 1) * 65536) };
        this.hoverDecodes++;
        mark("hoverDecodes", this.hoverDecodes);
        mark("lastHoverMs", res.decodeMs.toFixed(2));
        if (this.hoverPos && this.history.draft().hoverable) this.redraw(null, { light: true });
      });
  },

  /**
   * For a positive click at (x, y) on a hoverable draft: {result} when the last preview was
   * decoded exactly there, {awaiting: promise of the result} when that decode is running.
   */
  previewFor(x, y) {
    const hv = this.hoverResult;
    if (hv && hv.x === x && hv.y === y) {
      const { masks, iou, index, decodeMs, full, unsnapped, guide, prompt } = hv;
      return { result: { masks, iou, index, decodeMs, full, unsnapped, guide, prompt } };
    }
    const fl = this.hoverFlight;
    if (fl && fl.x === x && fl.y === y && fl.key === this.key) return { awaiting: fl.promise };
    return null;
  },

  /** A click waiting for the preview decode at its position gets that decode's result. */
  adoptPreview(entry, t0) {
    entry.awaiting.then((result) => {
      entry.awaiting = null;
      if (result && !entry.result && this.history.entries.includes(entry)) {
        entry.result = result;
        this.settle(entry, result.decodeMs);
        this.decodes++;
        mark("lastDecodeMs", result.decodeMs.toFixed(2));
        mark("decodeCount", this.decodes);
        const d = this.history.draft();
        if (d.latest && d.latest.entry === entry) this.redraw(t0);
      }
      this.decodeDraft(t0);
    });
  },
};

/** Add the hover preview to the Annotator class. */
export function installHover(cls) {
  Object.assign(cls.prototype, methods);
}
