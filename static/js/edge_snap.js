// Edge snapping: the decoded low-res logits pulled towards the image's colour edges, by a colour
// guided filter on the image's share of the 256x256 grid, guided by each cell's mean colour.
// Same arithmetic, in the same order and in float64, as annotator_backend/edge_snap.py (read
// its docstring for the method); the page shows, stores and feeds back the snapped logits.

const LOW = 256;
const MODEL = 1024;
export const RADIUS = 6;
const EPS = 1e-3;
const CLIP = 1e-4;
const MAX_LOGIT = 50;

/** The image's share of the low-res grid: [lw, lh] (decoding.low_res_extent). */
export function lowResExtent(width, height) {
  const s = MODEL / Math.max(width, height);
  const rw = Math.floor(width * s + 0.5);
  const rh = Math.floor(height * s + 0.5);
  return [Math.ceil((rw * LOW) / MODEL), Math.ceil((rh * LOW) / MODEL)];
}

// Scratch buffers of boxMean, grown as needed (one guide's grid at a time in practice).
let colSums = new Float64Array(0);
let rowSums = new Float64Array(0);

/**
 * In place: each of the c channels of x (Float64Array h*w*c, channel-last) becomes its mean
 * over the (2r+1)^2 window around the cell, the window clipped at the borders: running sums
 * along y, then along x, each window sum times 1 / its length (edge_snap.box_mean).
 */
export function boxMean(x, h, w, c, r = RADIUS) {
  const rowLen = w * c;
  if (colSums.length < (h + 1) * rowLen) colSums = new Float64Array((h + 1) * rowLen);
  if (rowSums.length < rowLen + c) rowSums = new Float64Array(rowLen + c);
  const cs = colSums;
  const rs = rowSums;
  cs.fill(0, 0, rowLen); // the sums start from 0 (a call of another shape wrote there)
  rs.fill(0, 0, c);
  // along y: running sums over rows, all columns at once (the same additions as per column)
  for (let i = 0; i < h; i++) {
    const a = i * rowLen;
    for (let j = 0; j < rowLen; j++) cs[a + rowLen + j] = cs[a + j] + x[a + j];
  }
  for (let i = 0; i < h; i++) {
    const lo = i - r > 0 ? i - r : 0;
    const hi = i + r + 1 < h ? i + r + 1 : h;
    const inv = 1 / (hi - lo);
    const a = lo * rowLen;
    const b = hi * rowLen;
    const o = i * rowLen;
    for (let j = 0; j < rowLen; j++) x[o + j] = (cs[b + j] - cs[a + j]) * inv;
  }
  // along x: running sums along each row, all channels at once
  for (let i = 0; i < h; i++) {
    const o = i * rowLen;
    for (let k = 0; k < rowLen; k++) rs[k + c] = rs[k] + x[o + k];
    for (let col = 0; col < w; col++) {
      const lo = col - r > 0 ? col - r : 0;
      const hi = col + r + 1 < w ? col + r + 1 : w;
      const inv = 1 / (hi - lo);
      for (let ch = 0; ch < c; ch++) x[o + col * c + ch] = (rs[hi * c + ch] - rs[lo * c + ch]) * inv;
    }
  }
  return x;
}

/** RGBA pixels (w x h) -> the mean colour in [0, 1] of each cell (or of the pixel under its
 * centre when no pixel centre falls in it): Float64Array lh*lw*3. */
export function cellColors(rgba, width, height) {
  const [lw, lh] = lowResExtent(width, height);
  const s = MODEL / Math.max(width, height);
  const cell = MODEL / LOW;
  const cx = new Int32Array(width);
  for (let x = 0; x < width; x++) cx[x] = Math.min(Math.floor(((x + 0.5) * s) / cell), lw - 1);
  const sums = new Float64Array(lh * lw * 3);
  const counts = new Float64Array(lh * lw);
  for (let y = 0; y < height; y++) {
    const row = Math.min(Math.floor(((y + 0.5) * s) / cell), lh - 1) * lw;
    for (let x = 0; x < width; x++) {
      const k = row + cx[x];
      const p = (y * width + x) * 4;
      sums[k * 3] += rgba[p];
      sums[k * 3 + 1] += rgba[p + 1];
      sums[k * 3 + 2] += rgba[p + 2];
      counts[k] += 1;
    }
  }
  for (let k = 0; k < lh * lw; k++) {
    if (counts[k] === 0) {
      // an image under 256 px a side: no pixel centre in this cell, take the pixel under its centre
      const x = Math.min(Math.floor(((k % lw) + 0.5) * cell / s), width - 1);
      const y = Math.min(Math.floor((Math.floor(k / lw) + 0.5) * cell / s), height - 1);
      const p = (y * width + x) * 4;
      for (let ch = 0; ch < 3; ch++) sums[k * 3 + ch] = rgba[p + ch] / 255;
      continue;
    }
    for (let ch = 0; ch < 3; ch++) sums[k * 3 + ch] = sums[k * 3 + ch] / counts[k] / 255;
  }
  return sums;
}

/** The per-image part: {lw, lh, colors, means, inverse} (edge_snap.image_guide). */
export function imageGuide(rgba, width, height) {
  const [lw, lh] = lowResExtent(width, height);
  const n = lw * lh;
  const colors = cellColors(rgba, width, height);
  const means = boxMean(colors.slice(), lh, lw, 3);
  const m = new Float64Array(n * 6);
  for (let k = 0; k < n; k++) {
    const r = colors[k * 3];
    const g = colors[k * 3 + 1];
    const b = colors[k * 3 + 2];
    const i = k * 6;
    m[i] = r * r;
    m[i + 1] = r * g;
    m[i + 2] = r * b;
    m[i + 3] = g * g;
    m[i + 4] = g * b;
    m[i + 5] = b * b;
  }
  boxMean(m, lh, lw, 6);
  const inverse = new Float64Array(n * 6);
  for (let k = 0; k < n; k++) {
    const mr = means[k * 3];
    const mg = means[k * 3 + 1];
    const mb = means[k * 3 + 2];
    const srr = m[k * 6] - mr * mr + EPS;
    const srg = m[k * 6 + 1] - mr * mg;
    const srb = m[k * 6 + 2] - mr * mb;
    const sgg = m[k * 6 + 3] - mg * mg + EPS;
    const sgb = m[k * 6 + 4] - mg * mb;
    const sbb = m[k * 6 + 5] - mb * mb + EPS;
    const irr = sgg * sbb - sgb * sgb;
    const irg = srb * sgb - srg * sbb;
    const irb = srg * sgb - srb * sgg;
    const igg = srr * sbb - srb * srb;
    const igb = srb * srg - srr * sgb;
    const ibb = srr * sgg - srg * srg;
    const det = srr * irr + srg * irg + srb * irb;
    const i = k * 6;
    inverse[i] = irr / det;
    inverse[i + 1] = irg / det;
    inverse[i + 2] = irb / det;
    inverse[i + 3] = igg / det;
    inverse[i + 4] = igb / det;
    inverse[i + 5] = ibb / det;
  }
  return { lw, lh, colors, means, inverse };
}

/** In place: the 256x256 logits at `offset` of `masks` snapped (edge_snap.snap_logits). */
export function snapLogits(masks, offset, guide) {
  const { lw, lh, colors, means, inverse: inv } = guide;
  const n = lw * lh;
  const pip = new Float64Array(n * 4); // p, then p times each colour channel
  for (let y = 0; y < lh; y++) {
    for (let x = 0; x < lw; x++) {
      const k = y * lw + x;
      const v = Math.min(Math.max(masks[offset + y * LOW + x], -MAX_LOGIT), MAX_LOGIT);
      const p = 1 / (1 + Math.exp(-v));
      pip[k * 4] = p;
      pip[k * 4 + 1] = colors[k * 3] * p;
      pip[k * 4 + 2] = colors[k * 3 + 1] * p;
      pip[k * 4 + 3] = colors[k * 3 + 2] * p;
    }
  }
  boxMean(pip, lh, lw, 4);
  const ab = pip; // reused: a (3 channels) and b of each cell, in place of what they come from
  for (let k = 0; k < n; k++) {
    const j = k * 4;
    const mp = pip[j];
    const mr = means[k * 3];
    const mg = means[k * 3 + 1];
    const mb = means[k * 3 + 2];
    const cr = pip[j + 1] - mr * mp;
    const cg = pip[j + 2] - mg * mp;
    const cb = pip[j + 3] - mb * mp;
    const i = k * 6;
    const ar = inv[i] * cr + inv[i + 1] * cg + inv[i + 2] * cb;
    const ag = inv[i + 1] * cr + inv[i + 3] * cg + inv[i + 4] * cb;
    const abl = inv[i + 2] * cr + inv[i + 4] * cg + inv[i + 5] * cb;
    ab[j] = ar;
    ab[j + 1] = ag;
    ab[j + 2] = abl;
    ab[j + 3] = mp - (ar * mr + ag * mg + abl * mb);
  }
  boxMean(ab, lh, lw, 4);
  for (let y = 0; y < lh; y++) {
    for (let x = 0; x < lw; x++) {
      const k = y * lw + x;
      const c = k * 3;
      const a = k * 4;
      let q = ab[a] * colors[c] + ab[a + 1] * colors[c + 1] + ab[a + 2] * colors[c + 2] + ab[a + 3];
      q = Math.min(Math.max(q, CLIP), 1 - CLIP);
      masks[offset + y * LOW + x] = Math.log(q / (1 - q));
    }
  }
}

/** Snap the outputs listed (indices into masks, 4 x 256 x 256) in place. */
export function snapMasks(masks, outputs, guide) {
  for (const k of outputs) snapLogits(masks, k * LOW * LOW, guide);
}

/**
 * The guide of an ImageBitmap (in a worker: OffscreenCanvas); closes the bitmap. The filter runs
 * once on blank logits too, so that the image's first click does not wait for it to compile.
 */
export function bitmapGuide(bitmap) {
  const { width, height } = bitmap;
  const ctx = new OffscreenCanvas(width, height).getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const guide = imageGuide(ctx.getImageData(0, 0, width, height).data, width, height);
  snapLogits(new Float32Array(LOW * LOW), 0, guide);
  return guide;
}

/** How the page hands its decoded <img> to the worker: the pixels as the file holds them. */
export const BITMAP_OPTIONS = { premultiplyAlpha: "none", colorSpaceConversion: "none" };
