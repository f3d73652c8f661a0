// The multimask candidates of a single click: three thumbnails of the image with each
// candidate mask and its predicted IoU; the chosen one (the best predicted IoU unless the
// annotator picked another) is highlighted. Clicking one, or pressing M, picks it (logged as a
// multimask_choice event by the annotator).

import { displayTables, fitSize } from "./geometry.js";
import { paintLogits, rgba32 } from "./masks.js";

const THUMB = 64; // CSS pixels, the longer side
const PIXELS = 256 * 256;

export class CandidatePicker {
  /** container: element to fill; onPick(index 1..3). */
  constructor(container, onPick) {
    this.el = container;
    this.onPick = onPick;
    this.shown = null; // {entry, color, image}
    this.items = [1, 2, 3].map((index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "candidate";
      button.dataset.testid = `candidate-${index}`;
      button.setAttribute("data-testid", `candidate-${index}`);
      const canvas = document.createElement("canvas");
      const caption = document.createElement("span");
      button.append(canvas, caption);
      button.addEventListener("click", () => this.onPick(index));
      this.el.append(button);
      return { index, button, canvas, caption };
    });
    this.scratch = document.createElement("canvas");
    this.thumb = { img: null, canvas: document.createElement("canvas") }; // the image, scaled once
    this.el.hidden = true;
  }

  /** Show candidates c = {entry, iou, masks, chosen} (draft.candidates()) or hide (null). */
  show(c, img, width, height, color) {
    if (!c || !img) {
      this.el.hidden = true;
      this.shown = null;
      return;
    }
    this.el.hidden = false;
    const same = this.shown && this.shown.entry === c.entry && this.shown.color === color && this.shown.img === img;
    if (!same) this.paint(c, img, width, height, color);
    this.shown = { entry: c.entry, color, img };
    for (const it of this.items) {
      const on = it.index === c.chosen;
      it.button.classList.toggle("chosen", on);
      it.button.setAttribute("aria-pressed", String(on));
    }
  }

  paint(c, img, width, height, color) {
    const [tw, th] = fitSize(width, height, THUMB, THUMB, 100);
    const dpr = window.devicePixelRatio || 1;
    const dw = Math.max(1, Math.round(tw * dpr));
    const dh = Math.max(1, Math.round(th * dpr));
    const tables = displayTables(width, height, dw, dh);
    const data = new ImageData(dw, dh);
    const buf = new Uint32Array(data.data.buffer);
    this.scratch.width = dw;
    this.scratch.height = dh;
    const bg = this.background(img, dw, dh);
    for (const it of this.items) {
      const i = it.index;
      it.canvas.width = dw;
      it.canvas.height = dh;
      it.canvas.style.width = `${tw}px`;
      it.canvas.style.height = `${th}px`;
      const ctx = it.canvas.getContext("2d");
      ctx.drawImage(bg, 0, 0);
      paintLogits(c.masks.subarray(i * PIXELS, (i + 1) * PIXELS), tables, buf, rgba32(color, 150));
      this.scratch.getContext("2d").putImageData(data, 0, 0);
      ctx.drawImage(this.scratch, 0, 0);
      it.caption.textContent = `${i} · IoU ${c.iou[i].toFixed(2)}`;
    }
  }

  /** The image scaled to the thumbnail size once per image, not from the full image per click. */
  background(img, dw, dh) {
    const t = this.thumb;
    if (t.img !== img || t.canvas.width !== dw || t.canvas.height !== dh) {
      t.canvas.width = dw;
      t.canvas.height = dh;
      t.canvas.getContext("2d").drawImage(img, 0, 0, dw, dh);
      t.img = img;
    }
    return t.canvas;
  }
}
