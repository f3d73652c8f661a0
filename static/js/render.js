// Drawing on the stage: four stacked canvases at display resolution: the image, the
// accepted masks, the mask being drawn and the prompt points (the top one gets the input).
// The current mask is the bilinear upscale of the cropped low-res logits, thresholded at 0,
// computed directly at display resolution with tables built once per image and size.

import { displayTables, fitSize, imageToCanvas } from "./geometry.js";
import { paintBinary, paintLogits, rgba32 } from "./masks.js";
import { decodeRle } from "./rle.js";

const CURRENT_ALPHA = 120;
const ACCEPTED_ALPHA = 90;

export class StageRenderer {
  /** stage: the element that sizes the canvases; canvases: {image, accepted, current, prompts}. */
  constructor(stage, canvases) {
    this.stage = stage;
    this.c = canvases;
    this.img = null;
    this.width = 0;
    this.height = 0;
    this.tables = null;
    this.currentBuf = null;
    this.maskCache = new Map(); // accepted mask key -> row-major Uint8Array at image size
  }

  /** Show a new image (an HTMLImageElement or ImageBitmap of width x height). */
  setImage(img, width, height) {
    this.img = img;
    this.width = width;
    this.height = height;
    this.maskCache.clear();
    this.layout();
  }

  /** Fit the canvases into the stage box; rebuild the per-size tables. */
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
    this.tables = displayTables(this.width, this.height, dw, dh);
    this.currentImage = new ImageData(dw, dh);
    this.currentBuf = new Uint32Array(this.currentImage.data.buffer);
    const ctx = this.c.image.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.img, 0, 0, dw, dh);
  }

  get displaySize() {
    return [this.c.image.width, this.c.image.height];
  }

  /** Draw the current mask from chosen low-res logits (null clears). Returns display area. */
  drawCurrent(logits, color) {
    const ctx = this.c.current.getContext("2d");
    if (!logits || !this.tables) {
      ctx.clearRect(0, 0, this.c.current.width, this.c.current.height);
      return 0;
    }
    const area = paintLogits(logits, this.tables, this.currentBuf, rgba32(color, CURRENT_ALPHA));
    ctx.putImageData(this.currentImage, 0, 0);
    return area;
  }

  /** Redraw all accepted masks: [{key, rle, color}] with COCO RLE at image size. */
  drawAccepted(masks) {
    const cv = this.c.accepted;
    const ctx = cv.getContext("2d");
    const out = new ImageData(cv.width, cv.height);
    const buf = new Uint32Array(out.data.buffer);
    for (const m of masks) {
      let bin = this.maskCache.get(m.key);
      if (!bin) {
        bin = decodeRle(m.rle);
        this.maskCache.set(m.key, bin);
      }
      paintBinary(bin, this.width, this.height, buf, cv.width, cv.height, rgba32(m.color, ACCEPTED_ALPHA));
    }
    ctx.putImageData(out, 0, 0);
  }

  /** Draw prompt points: [{x, y, label}] in image pixels. */
  drawPrompts(points) {
    const cv = this.c.prompts;
    const ctx = cv.getContext("2d");
    ctx.clearRect(0, 0, cv.width, cv.height);
    const r = Math.max(4, Math.round(5 * (window.devicePixelRatio || 1)));
    for (const p of points) {
      const { x, y } = imageToCanvas(p.x, p.y, this.width, this.height, cv.width, cv.height);
      ctx.beginPath();
      ctx.arc(x, y, r, 0, 2 * Math.PI);
      ctx.fillStyle = p.label === 1 ? "#16a34a" : "#dc2626";
      ctx.fill();
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
    }
  }
}
