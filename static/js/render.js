// Drawing on the stage: four stacked canvases at display resolution: the image, the accepted
// masks, the mask being drawn and the prompts (points, box, brush cursor; the top canvas gets
// the input). Everything is drawn through the view (zoom/pan) of geometry.displayTables, so
// prompts and strokes stay in image pixels whatever the zoom.

import { displayRect, fillRuns, logitsBox, lowResRect, paintCurrent, paintLabels, unionRect } from "./paint.js";
import { displayTables, fitSize, imageToCanvas, viewRect } from "./geometry.js";
import { rgba32 } from "./masks.js";
import { FullMaskPainter } from "./official_mask.js";

const CURRENT_ALPHA = 130;
const ACCEPTED_ALPHA = 90;
const DIM = rgba32("#98a2b3", 70);

export class StageRenderer {
  /** stage: the element that sizes the canvases; canvases: {image, accepted, current, prompts}. */
  constructor(stage, canvases) {
    this.stage = stage;
    this.c = canvases;
    this.img = null;
    this.width = 0;
    this.height = 0;
    this.view = null; // {z, cx, cy}
    this.tables = null;
    this.labels = null; // Uint16Array: visible accepted masks, the later one on top
    this.colors = new Uint32Array(1);
    this.fullPainter = null; // the official format's image-size masks (benchmark anchor)
  }

  /** Show a new image (an HTMLImageElement or ImageBitmap of width x height). */
  setImage(img, width, height) {
    this.img = img;
    this.width = width;
    this.height = height;
    this.view = { z: 1, cx: width / 2, cy: height / 2 };
    this.labels = new Uint16Array(width * height);
    this.labelRows = new Uint8Array(height);
    this.shownKeys = [];
    this.colors = new Uint32Array(1);
    this.layout();
  }

  /** Fit the canvases into the stage box and redraw the image. */
  layout() {
    if (!this.img) return;
    const box = this.stage.getBoundingClientRect();
    const [cssW, cssH] = fitSize(this.width, this.height, Math.max(box.width, 50), Math.max(box.height, 50));
    const dpr = window.devicePixelRatio || 1;
    const dw = Math.max(1, Math.round(cssW * dpr));
    const dh = Math.max(1, Math.round(cssH * dpr));
    for (const cv of Object.values(this.c)) {
      cv.width = dw;
      cv.height = dh;
      cv.style.width = `${cssW}px`;
      cv.style.height = `${cssH}px`;
    }
    this.currentImage = new ImageData(dw, dh);
    this.currentBuf = new Uint32Array(this.currentImage.data.buffer);
    this.painted = null; // canvases were resized: blank
    this.acceptedImage = new ImageData(dw, dh);
    this.acceptedBuf = new Uint32Array(this.acceptedImage.data.buffer);
    this.setView(this.view);
  }

  /** Change the zoom/pan state: rebuild the per-view tables and redraw the image layer. */
  setView(view) {
    this.view = view;
    const cv = this.c.image;
    this.tables = displayTables(this.width, this.height, cv.width, cv.height, view);
    const v = viewRect(view, this.width, this.height);
    const ctx = cv.getContext("2d");
    ctx.imageSmoothingEnabled = view.z < 4;
    ctx.imageSmoothingQuality = "high";
    ctx.clearRect(0, 0, cv.width, cv.height);
    ctx.drawImage(this.img, v.x, v.y, v.w, v.h, 0, 0, cv.width, cv.height);
    this.paintAccepted();
  }

  get displaySize() {
    return [this.c.image.width, this.c.image.height];
  }

  /**
   * Update the label map from the accepted masks: [{key, counts, color, hidden, editing}] in
   * order (a later mask is drawn over an earlier one); hidden and edited masks are left out.
   * Masks appended since the last call are filled in; any other change rebuilds the map.
   */
  setAccepted(masks) {
    if (!this.labels) return;
    const shown = masks.filter((m) => !m.hidden && !m.editing);
    const keys = shown.map((m) => m.key);
    const old = this.shownKeys || [];
    const appended = old.length <= keys.length && old.every((k, i) => k === keys[i]);
    if (!appended) {
      this.labels.fill(0);
      this.labelRows.fill(0);
    }
    this.colors = new Uint32Array(shown.length + 1);
    shown.forEach((m, i) => {
      this.colors[i + 1] = rgba32(m.color, ACCEPTED_ALPHA);
      if (!appended || i >= old.length) {
        fillRuns(this.labels, m.counts, this.width, this.height, i + 1, this.labelRows);
      }
    });
    this.shownKeys = keys;
    this.paintAccepted();
  }

  paintAccepted() {
    if (!this.tables || !this.labels) return;
    paintLabels(this.acceptedBuf, this.tables, this.labels, this.colors, this.width);
    this.c.accepted.getContext("2d").putImageData(this.acceptedImage, 0, 0);
  }

  /** The accepted mask label (1-based, see setAccepted) at an image pixel, 0 for none. */
  labelAt(x, y) {
    if (!this.labels) return 0;
    const ix = Math.min(this.width - 1, Math.max(0, Math.floor(x)));
    const iy = Math.min(this.height - 1, Math.max(0, Math.floor(y)));
    return this.labels[iy * this.width + ix];
  }

  /**
   * Draw the current mask. layers: {logits, full, base, edit, editBox} (see
   * paint.paintCurrent; full: image-size logits of the official decoder, drawn its way);
   * clip: dim the pixels that visible accepted masks keep. `imageBox` (image pixels) limits
   * the repaint to the display pixels it covers (a stroke being drawn). A full draw paints
   * only the display rect the mask can reach (its low-res cells, its edits) and clears what
   * the previous draw painted outside it. Returns the painted area (display pixels).
   */
  drawCurrent(layers, color, clip = true, imageBox = null) {
    const ctx = this.c.current.getContext("2d");
    if (!this.tables) return 0;
    const all = { ...layers, width: this.width, taken: clip ? this.labels : null, takenRows: this.labelRows };
    const paint = (rect) =>
      paintCurrent(this.currentBuf, this.tables, all, rgba32(color, CURRENT_ALPHA), DIM, rect);
    const put = (r) => ctx.putImageData(this.currentImage, 0, 0, r[0], r[1], r[2] - r[0], r[3] - r[1]);
    if (imageBox) {
      const rect = displayRect(this.tables, imageBox);
      if (rect) {
        paint(rect);
        put(rect);
        this.painted = unionRect(this.painted, rect);
      }
      return this.area;
    }
    const full = [0, 0, this.c.current.width, this.c.current.height];
    if (layers && layers.full) {
      this.fullPainter = this.fullPainter || new FullMaskPainter();
      const [, , dw, dh] = full;
      this.painted = full;
      const c32 = rgba32(color, CURRENT_ALPHA);
      this.area = this.fullPainter.draw(ctx, layers.full, this.width, this.height, c32, this.view, dw, dh);
      return this.area;
    }
    let rect = null;
    if (layers && layers.base) rect = full;
    else if (layers && layers.logits) rect = lowResRect(this.tables, logitsBox(layers.logits));
    if (layers && layers.edit && rect !== full) rect = unionRect(rect, displayRect(this.tables, layers.editBox));
    if (this.painted) {
      const p = this.painted;
      ctx.clearRect(p[0], p[1], p[2] - p[0], p[3] - p[1]);
    }
    this.painted = rect;
    this.area = rect ? paint(rect) : 0;
    if (rect) put(rect);
    return this.area;
  }

  toCanvas(x, y) {
    const cv = this.c.prompts;
    return imageToCanvas(x, y, this.width, this.height, cv.width, cv.height, this.view);
  }

  /**
   * Draw the prompt layer: points [{x, y, label}], box {x0, y0, x1, y1} | null, a rubber band
   * being dragged, and the brush cursor {x, y, radius, erase} (all in image pixels).
   */
  drawPrompts({ points = [], box = null, band = null, cursor = null } = {}) {
    const cv = this.c.prompts;
    const ctx = cv.getContext("2d");
    ctx.clearRect(0, 0, cv.width, cv.height);
    const dpr = window.devicePixelRatio || 1;
    const rect = (b, color, dash) => {
      const a = this.toCanvas(b.x0, b.y0);
      const c = this.toCanvas(b.x1, b.y1);
      ctx.setLineDash(dash);
      ctx.lineWidth = 2 * dpr;
      ctx.strokeStyle = color;
      ctx.strokeRect(a.x, a.y, c.x - a.x, c.y - a.y);
      ctx.setLineDash([]);
    };
    if (box) rect(box, "#f79009", []);
    if (band) rect(band, "#ffffff", [6 * dpr, 4 * dpr]);
    const r = Math.max(4, Math.round(5 * dpr));
    for (const p of points) {
      const { x, y } = this.toCanvas(p.x, p.y);
      ctx.beginPath();
      ctx.arc(x, y, r, 0, 2 * Math.PI);
      ctx.fillStyle = p.label === 1 ? "#16a34a" : "#dc2626";
      ctx.fill();
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
    }
    if (cursor) {
      const { x, y } = this.toCanvas(cursor.x, cursor.y);
      const scale = cv.width / viewRect(this.view, this.width, this.height).w;
      ctx.beginPath();
      ctx.arc(x, y, Math.max(1, cursor.radius * scale), 0, 2 * Math.PI);
      ctx.lineWidth = 1.5 * dpr;
      ctx.strokeStyle = cursor.erase ? "#f04438" : "#ffffff";
      ctx.stroke();
    }
  }
}
