// Low-res logits -> binary masks: at display resolution (drawing) and at image resolution
// (what gets stored). Pure functions over typed arrays; usable in the decoder worker.

import { LOW_RES, MODEL_SIZE, axisTable, resizedSize } from "./geometry.js";
import { RunEncoder } from "./rle.js";

/** "#rrggbb" + alpha (0..255) -> a little-endian RGBA pixel for a Uint32Array view. */
export function rgba32(hex, alpha) {
  const v = parseInt(String(hex || "#1f77b4").replace("#", "").padEnd(6, "0").slice(0, 6), 16);
  const r = (v >> 16) & 255;
  const g = (v >> 8) & 255;
  const b = v & 255;
  return ((alpha & 255) << 24) | (b << 16) | (g << 8) | r;
}

/**
 * Paint `logits` (the chosen 256x256 low-res logits) into `out` (Uint32Array of
 * tables.width * tables.height pixels): bilinear upscale of the image's cropped part of the
 * frame, then threshold at 0. Mask pixels get `color`, others 0. Returns the mask area in
 * display pixels.
 */
export function paintLogits(logits, tables, out, color) {
  const { width: dw, height: dh, x: tx, y: ty } = tables;
  let area = 0;
  for (let dy = 0; dy < dh; dy++) {
    const r0 = ty.i0[dy] * LOW_RES;
    const r1 = ty.i1[dy] * LOW_RES;
    const wy = ty.w1[dy];
    const row = dy * dw;
    for (let dx = 0; dx < dw; dx++) {
      const c0 = tx.i0[dx];
      const c1 = tx.i1[dx];
      const wx = tx.w1[dx];
      const top = logits[r0 + c0] + (logits[r0 + c1] - logits[r0 + c0]) * wx;
      const bot = logits[r1 + c0] + (logits[r1 + c1] - logits[r1 + c0]) * wx;
      if (top + (bot - top) * wy > 0) {
        out[row + dx] = color;
        area++;
      } else {
        out[row + dx] = 0;
      }
    }
  }
  return area;
}

/** Bilinear resize of a row-major float image, torch semantics (align_corners=False). */
function resize(src, inW, inH, outW, outH, scaleX, scaleY) {
  const tx = axisTable(outW, inW, scaleX);
  const ty = axisTable(outH, inH, scaleY);
  const dst = new Float32Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const r0 = ty.i0[y] * inW;
    const r1 = ty.i1[y] * inW;
    const wy = ty.w1[y];
    for (let x = 0; x < outW; x++) {
      const c0 = tx.i0[x];
      const c1 = tx.i1[x];
      const wx = tx.w1[x];
      const top = (1 - wx) * src[r0 + c0] + wx * src[r0 + c1];
      const bot = (1 - wx) * src[r1 + c0] + wx * src[r1 + c1];
      dst[y * outW + x] = (1 - wy) * top + wy * bot;
    }
  }
  return dst;
}

/**
 * The official post-processing, as decoding.upscale_logits: bilinear 256 -> 1024, crop the
 * unpadded (rw x rh) part, then bilinear to the image size, threshold at 0. Returns the binary
 * mask at image resolution (Uint8Array, row-major, width x height).
 */
export function imageMask(logits, width, height) {
  const [rw, rh] = resizedSize(width, height);
  // Stage 1: only the cropped part of the 1024 frame is needed.
  const s1 = LOW_RES / MODEL_SIZE;
  const tx1 = axisTable(rw, LOW_RES, s1);
  const ty1 = axisTable(rh, LOW_RES, s1);
  const mid = new Float32Array(rw * rh);
  for (let y = 0; y < rh; y++) {
    const r0 = ty1.i0[y] * LOW_RES;
    const r1 = ty1.i1[y] * LOW_RES;
    const wy = ty1.w1[y];
    for (let x = 0; x < rw; x++) {
      const c0 = tx1.i0[x];
      const c1 = tx1.i1[x];
      const wx = tx1.w1[x];
      const top = (1 - wx) * logits[r0 + c0] + wx * logits[r0 + c1];
      const bot = (1 - wx) * logits[r1 + c0] + wx * logits[r1 + c1];
      mid[y * rw + x] = (1 - wy) * top + wy * bot;
    }
  }
  // Stage 2: (rw x rh) -> (width x height).
  const tx = axisTable(width, rw, rw / width);
  const ty = axisTable(height, rh, rh / height);
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const r0 = ty.i0[y] * rw;
    const r1 = ty.i1[y] * rw;
    const wy = ty.w1[y];
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const c0 = tx.i0[x];
      const c1 = tx.i1[x];
      const wx = tx.w1[x];
      const top = (1 - wx) * mid[r0 + c0] + wx * mid[r0 + c1];
      const bot = (1 - wx) * mid[r1 + c0] + wx * mid[r1 + c1];
      if ((1 - wy) * top + wy * bot > 0) out[row + x] = 1;
    }
  }
  return out;
}

/**
 * A row-major binary mask -> uncompressed COCO RLE walked column by column (Fortran order, as
 * pycocotools): {size: [h, w], counts, area, bbox}.
 */
export function maskRle(mask, width, height) {
  const enc = new RunEncoder();
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let x = 0; x < width; x++) {
    let colHit = false;
    for (let y = 0; y < height; y++) {
      const on = mask[y * width + x] !== 0;
      enc.push(on);
      if (on) {
        colHit = true;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
    if (colHit) {
      if (x < x0) x0 = x;
      x1 = x;
    }
  }
  const counts = enc.finish();
  const area = enc.ones;
  const bbox = area ? [x0, y0, x1 - x0 + 1, y1 - y0 + 1] : [0, 0, 0, 0];
  return { size: [height, width], counts, area, bbox };
}

/** Chosen low-res logits -> the image-size mask as uncompressed COCO RLE (see maskRle). */
export function imageMaskRle(logits, width, height) {
  return maskRle(imageMask(logits, width, height), width, height);
}

/** Logit given to mask_input for pixels inside (+) and outside (-) a binary mask. */
export const MASK_INPUT_LOGIT = 10;

/**
 * A binary image-resolution mask (an accepted mask being edited) -> mask_input logits
 * [256 x 256]: each low-res cell samples the mask at its centre (nearest pixel); cells in the
 * padding are outside. Same as replay.mask_input_from_binary.
 */
export function maskInputFromBinary(mask, width, height) {
  const [rw, rh] = resizedSize(width, height);
  const out = new Float32Array(LOW_RES * LOW_RES);
  const cell = MODEL_SIZE / LOW_RES;
  for (let v = 0; v < LOW_RES; v++) {
    const fy = (v + 0.5) * cell;
    const iy = Math.min(height - 1, Math.floor((fy * height) / rh));
    for (let u = 0; u < LOW_RES; u++) {
      const fx = (u + 0.5) * cell;
      let on = false;
      if (fx < rw && fy < rh) on = mask[iy * width + Math.min(width - 1, Math.floor((fx * width) / rw))] !== 0;
      out[v * LOW_RES + u] = on ? MASK_INPUT_LOGIT : -MASK_INPUT_LOGIT;
    }
  }
  return out;
}

/** Image-resolution logits [height * width] row-major, for tests and replay checks. */
export function imageLogits(logits, width, height) {
  const [rw, rh] = resizedSize(width, height);
  const full = resize(logits, LOW_RES, LOW_RES, MODEL_SIZE, MODEL_SIZE, 0.25, 0.25);
  const crop = new Float32Array(rw * rh);
  for (let y = 0; y < rh; y++) crop.set(full.subarray(y * MODEL_SIZE, y * MODEL_SIZE + rw), y * rw);
  return resize(crop, rw, rh, width, height, rw / width, rh / height);
}
