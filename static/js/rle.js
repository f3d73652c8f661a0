// COCO run-length encoding. Masks are walked in column-major (Fortran) order, as pycocotools
// does; counts alternate runs of 0s and 1s and always start with the count of 0s.

/** Builds uncompressed COCO counts from a stream of pixels pushed in column-major order. */
export class RunEncoder {
  constructor() {
    this.counts = [];
    this.current = false; // the value of the run being counted; runs start with 0s
    this.run = 0;
    this.ones = 0;
  }

  push(on) {
    if (on !== this.current) {
      this.counts.push(this.run);
      this.current = on;
      this.run = 0;
    }
    this.run++;
    if (on) this.ones++;
  }

  /** The counts; a trailing run is always emitted (an all-zero mask gives [h*w]). */
  finish() {
    this.counts.push(this.run);
    this.run = 0;
    return this.counts;
  }
}

/** Row-major binary mask (Uint8Array, width x height) -> uncompressed COCO counts. */
export function encodeMask(mask, width, height) {
  const enc = new RunEncoder();
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) enc.push(mask[y * width + x] !== 0);
  }
  return enc.finish();
}

/** Uncompressed counts -> row-major binary mask (Uint8Array, width x height). */
export function decodeCounts(counts, width, height) {
  const mask = new Uint8Array(width * height);
  const total = width * height;
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    const end = Math.min(total, pos + counts[i]);
    if (i % 2 === 1) {
      for (let p = pos; p < end; p++) {
        const x = Math.floor(p / height);
        mask[(p - x * height) * width + x] = 1;
      }
    }
    pos = end;
  }
  return mask;
}

/**
 * COCO compressed counts string (pycocotools `rleToString`) -> uncompressed counts.
 * Each count is written as 5-bit groups with a continuation bit, offset by 48, and counts
 * after the second are stored as differences to the count two places earlier.
 */
export function decompressCounts(str) {
  const counts = [];
  let p = 0;
  while (p < str.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= str.length) throw new Error("truncated RLE string");
      const c = str.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

/** Decode an RLE object {size: [h, w], counts: string | number[]} to a row-major mask. */
export function decodeRle(rle) {
  const [h, w] = rle.size;
  const counts = typeof rle.counts === "string" ? decompressCounts(rle.counts) : rle.counts;
  return decodeCounts(counts, w, h);
}

/** Number of 1s of uncompressed counts. */
export function countsArea(counts) {
  let a = 0;
  for (let i = 1; i < counts.length; i += 2) a += counts[i];
  return a;
}
