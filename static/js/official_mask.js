// The official SAM demo's mask post-processing, for the benchmark anchor (page option
// ?decoder=official): the decoder returns logits already upscaled to the image size (in the
// ONNX graph); every pixel above the model's mask_threshold (0) is painted into an ImageData of
// the image's size, which the browser then scales to the display. (The demo turns that
// ImageData into a PNG data URL shown by an <img>; here it is put on a scratch canvas and
// drawn onto the overlay, which is faster, so the anchor is not handicapped.)

import { viewRect } from "./geometry.js";

export class FullMaskPainter {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.image = null;
  }

  /**
   * Threshold `full` (Float32Array width*height, row-major) at 0 with `color` (a Uint32 RGBA
   * pixel) and draw it on `ctx` (a canvas of dw x dh showing `view`). Returns the mask area in
   * image pixels.
   */
  draw(ctx, full, width, height, color, view, dw, dh) {
    if (!this.image || this.image.width !== width || this.image.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.image = new ImageData(width, height);
      this.pixels = new Uint32Array(this.image.data.buffer);
    }
    const px = this.pixels;
    let area = 0;
    for (let i = 0; i < px.length; i++) {
      if (full[i] > 0) {
        px[i] = color;
        area++;
      } else {
        px[i] = 0;
      }
    }
    this.canvas.getContext("2d").putImageData(this.image, 0, 0);
    const v = viewRect(view, width, height);
    ctx.clearRect(0, 0, dw, dh);
    ctx.drawImage(this.canvas, v.x, v.y, v.w, v.h, 0, 0, dw, dh);
    return area;
  }
}
