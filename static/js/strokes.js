// Brush and eraser strokes at full image resolution. The rasterisation is the contract that
// annotator_backend/replay.py implements identically (same float64 operations, same order):
//
//   A stroke is {kind: "stroke" (brush) | "erase", path: [[x, y], ...], radius} in image pixel
//   coordinates (pixel (i, j) covers [i, i+1) x [j, j+1), its centre is (i + 0.5, j + 0.5)).
//   Path points are rounded to 1/100 pixel when captured. Pixel (i, j) belongs to the stroke
//   when the squared distance from its centre to the polyline is <= radius^2: a disc at every
//   point plus a capsule between consecutive points (a single point is a disc). For segment
//   a -> b: dx = bx - ax, dy = by - ay, L = dx*dx + dy*dy,
//   t = L > 0 ? ((cx - ax)*dx + (cy - ay)*dy) / L : 0, clamped to [0, 1],
//   ex = ax + t*dx - cx, ey = ay + t*dy - cy, inside when ex*ex + ey*ey <= radius*radius.
//   Candidate pixels: i in [max(0, floor(min(ax, bx) - r)), min(W - 1, ceil(max(ax, bx) + r))].
//
// Strokes apply in order over the model's mask: a brush stroke sets its pixels to 1, an eraser
// stroke to 0 (the last stroke touching a pixel decides it).

export const BRUSH = "stroke";
export const ERASE = "erase";

/** Round a captured coordinate to 1/100 pixel: the value that is both drawn and logged. */
export const quantize = (v) => Math.round(v * 100) / 100;

/**
 * Call fn(index) for every pixel of segment a -> b (radius r) inside a width x height image.
 * Returns the pixel box touched [x0, y0, x1, y1] (inclusive) or null.
 */
export function forSegment(ax, ay, bx, by, r, width, height, fn) {
  const i0 = Math.max(0, Math.floor(Math.min(ax, bx) - r));
  const i1 = Math.min(width - 1, Math.ceil(Math.max(ax, bx) + r));
  const j0 = Math.max(0, Math.floor(Math.min(ay, by) - r));
  const j1 = Math.min(height - 1, Math.ceil(Math.max(ay, by) + r));
  if (i0 > i1 || j0 > j1) return null;
  const dx = bx - ax;
  const dy = by - ay;
  const L = dx * dx + dy * dy;
  const r2 = r * r;
  for (let j = j0; j <= j1; j++) {
    const cy = j + 0.5;
    const row = j * width;
    for (let i = i0; i <= i1; i++) {
      const cx = i + 0.5;
      let t = L > 0 ? ((cx - ax) * dx + (cy - ay) * dy) / L : 0;
      t = Math.min(1, Math.max(0, t));
      const ex = ax + t * dx - cx;
      const ey = ay + t * dy - cy;
      if (ex * ex + ey * ey <= r2) fn(row + i);
    }
  }
  return [i0, j0, i1, j1];
}

/** Segment k of a path: [a, b] (a single point gives the degenerate segment [p0, p0]). */
function segment(path, k) {
  const a = path[k];
  const b = path.length > 1 ? path[k + 1] : a;
  return [a[0], a[1], b[0], b[1]];
}

export function segmentCount(path) {
  return Math.max(1, path.length - 1);
}

/** Grow box `acc` ([x0, y0, x1, y1] or null) by box `b`. */
export function unionBox(acc, b) {
  if (!b) return acc;
  if (!acc) return b.slice();
  return [Math.min(acc[0], b[0]), Math.min(acc[1], b[1]), Math.max(acc[2], b[2]), Math.max(acc[3], b[3])];
}

/**
 * Write segments [from, to) of a stroke into `layer` (Uint8Array, width x height) with
 * `value`. Returns the pixel box touched.
 */
export function paintSegments(layer, width, height, stroke, value, from = 0, to = segmentCount(stroke.path)) {
  let box = null;
  const set = (idx) => {
    layer[idx] = value;
  };
  for (let k = from; k < to; k++) {
    const [ax, ay, bx, by] = segment(stroke.path, k);
    box = unionBox(box, forSegment(ax, ay, bx, by, stroke.radius, width, height, set));
  }
  return box;
}

/** Apply strokes in order to a binary mask (Uint8Array 0/1, row-major): brush 1, eraser 0. */
export function applyStrokes(mask, width, height, strokes) {
  for (const s of strokes) paintSegments(mask, width, height, s, s.kind === ERASE ? 0 : 1);
  return mask;
}

/**
 * The edit layer of the display: 0 untouched, 1 brushed, 2 erased (last stroke wins), with the
 * box of touched pixels. Rebuilt from the stroke list on undo; extended segment by segment
 * while a stroke is drawn.
 */
export class EditLayer {
  constructor(width, height) {
    this.width = width;
    this.height = height;
    this.data = new Uint8Array(width * height);
    this.box = null;
  }

  clear() {
    if (this.box) this.data.fill(0);
    this.box = null;
  }

  /** Paint segments [from, to) of `stroke`; returns the touched box. */
  paint(stroke, from = 0, to = segmentCount(stroke.path)) {
    const b = paintSegments(this.data, this.width, this.height, stroke, stroke.kind === ERASE ? 2 : 1, from, to);
    this.box = unionBox(this.box, b);
    return b;
  }

  rebuild(strokes) {
    this.clear();
    for (const s of strokes) this.paint(s);
  }
}

/**
 * A stroke being drawn: points are added as the pointer moves (closer than `minStep` image
 * pixels to the last one: skipped). `add` returns the index range of new segments to paint.
 */
export class StrokeBuilder {
  constructor(kind, radius, x, y) {
    this.stroke = { kind, radius, path: [[quantize(x), quantize(y)]] };
    this.minStep = Math.max(0.5, radius / 4);
  }

  add(x, y, force = false) {
    const p = [quantize(x), quantize(y)];
    const path = this.stroke.path;
    const last = path[path.length - 1];
    if (p[0] === last[0] && p[1] === last[1]) return null;
    if (!force && Math.hypot(p[0] - last[0], p[1] - last[1]) < this.minStep) return null;
    path.push(p);
    return [path.length - 2, path.length - 1];
  }
}
