// Zoom and pan of the stage: the canvases keep their size (the image fitted to the stage) and
// show a part of the image, zoom z >= 1 around a centre in image pixels. Prompts, strokes and
// masks stay in image pixels; only the display tables change (geometry.displayTables).

import { viewRect } from "./geometry.js";

const MAX_DISPLAY_PER_PIXEL = 32; // the most a zoom may enlarge one image pixel (display px)

export class ViewController {
  /** renderer: StageRenderer; element: the canvas receiving the pointer; onChange(view). */
  constructor(renderer, element, onChange = () => {}) {
    this.renderer = renderer;
    this.element = element;
    this.onChange = onChange;
  }

  get view() {
    return this.renderer.view;
  }

  maxZoom() {
    const [dw] = this.renderer.displaySize;
    return Math.max(1, (MAX_DISPLAY_PER_PIXEL * this.renderer.width) / Math.max(1, dw));
  }

  /** Set zoom z and the visible rect's top-left (x, y), clamped; redraws. */
  apply(z, x, y) {
    const { width, height } = this.renderer;
    const zz = Math.min(Math.max(z, 1), this.maxZoom());
    const w = width / zz;
    const h = height / zz;
    const v = viewRect({ z: zz, cx: x + w / 2, cy: y + h / 2 }, width, height);
    this.renderer.setView({ z: zz, cx: v.x + v.w / 2, cy: v.y + v.h / 2 });
    this.onChange(this.renderer.view);
  }

  /** Zoom by `factor` keeping the image point under (clientX, clientY) in place. */
  zoomAt(clientX, clientY, factor) {
    if (!this.renderer.img) return;
    const rect = this.element.getBoundingClientRect();
    const { width, height } = this.renderer;
    const v = viewRect(this.view, width, height);
    const fx = (clientX - rect.left) / rect.width;
    const fy = (clientY - rect.top) / rect.height;
    const px = v.x + fx * v.w;
    const py = v.y + fy * v.h;
    const z = Math.min(Math.max(this.view.z * factor, 1), this.maxZoom());
    this.apply(z, px - (fx * width) / z, py - (fy * height) / z);
  }

  /** Zoom in (+1) or out (-1) around the centre. */
  zoomStep(dir) {
    const rect = this.element.getBoundingClientRect();
    this.zoomAt(rect.left + rect.width / 2, rect.top + rect.height / 2, dir > 0 ? 1.25 : 0.8);
  }

  /** Move the image by (dx, dy) CSS pixels. */
  pan(dx, dy) {
    if (!this.renderer.img) return;
    const rect = this.element.getBoundingClientRect();
    const v = viewRect(this.view, this.renderer.width, this.renderer.height);
    this.apply(this.view.z, v.x - (dx / rect.width) * v.w, v.y - (dy / rect.height) * v.h);
  }

  fit() {
    if (this.renderer.img) this.apply(1, 0, 0);
  }
}
