// Painting at display resolution through the view tables of geometry.displayTables: the mask
// being drawn (model logits or the edited mask, then brush/eraser edits) and the label map of
// the accepted masks. Pure functions over typed arrays; rect = [x0, y0, x1, y1) display pixels.

/**
 * Runs of one display axis table (geometry.axisTable/viewAxis): display pixels that sample the
 * same pair of low-res cells are contiguous. {start: Int32Array (count + 1 boundaries), count},
 * built once per table.
 */
function cellRuns(t) {
  if (t.runs) return t.runs;
  const n = t.i0.length;
  const start = [0];
  for (let d = 1; d < n; d++) if (t.i0[d] !== t.i0[d - 1] || t.i1[d] !== t.i1[d - 1]) start.push(d);
  start.push(n);
  t.runs = { start: Int32Array.from(start), count: start.length - 1 };
  return t.runs;
}

/**
 * The current mask into `out` (Uint32Array dw x dh). layers: {logits: 256x256 low-res logits or
 * null, base: Uint8Array binary mask at image size or null (used when logits is null), edit:
 * Uint8Array edit layer (0 none, 1 brush, 2 eraser) or null, editBox: [x0, y0, x1, y1] image
 * pixels of the edits, taken: Uint16Array label map of masks that keep their pixels or null,
 * takenRows: Uint8Array, 1 for image rows with a label, width}. Mask pixels get `color`,
 * pixels another mask keeps get `dim`, the rest 0. Returns the number of mask pixels painted.
 * The logits are interpolated along y once per display row (a 256-value row buffer), then
 * along x: a run of display pixels between two low-res cells of the same sign is filled at
 * once (a bilinear sample between two positive logits is positive), only runs that change
 * sign are interpolated per pixel.
 */
export function paintCurrent(out, tables, layers, color, dim, rect = null) {
  const { width: dw, height: dh, x: tx, y: ty } = tables;
  const { logits, base, edit, editBox, taken, takenRows, width } = layers;
  const [rx0, ry0, rx1, ry1] = rect || [0, 0, dw, dh];
  const eb = edit && editBox ? editBox : null;
  const rowBuf = new Float32Array(256);
  const c0s = tx.i0;
  const c1s = tx.i1;
  const wxs = tx.w1;
  const pxs = tx.px;
  const runs = cellRuns(tx);
  let firstRun = 0;
  while (firstRun < runs.count - 1 && runs.start[firstRun + 1] <= rx0) firstRun++;
  let area = 0;
  for (let dy = ry0; dy < ry1; dy++) {
    const row = dy * dw;
    const iy = ty.px[dy];
    const irow = iy * width;
    let rowArea = -1; // known when the row is painted by runs only
    if (logits) {
      const r0 = ty.i0[dy] * 256;
      const r1 = ty.i1[dy] * 256;
      const wy = ty.w1[dy];
      for (let c = 0; c < 256; c++) {
        const a = logits[r0 + c];
        rowBuf[c] = a + (logits[r1 + c] - a) * wy;
      }
      rowArea = 0;
      for (let k = firstRun; k < runs.count; k++) {
        const s = Math.max(runs.start[k], rx0);
        const e = Math.min(runs.start[k + 1], rx1);
        if (s >= rx1) break;
        const a = rowBuf[c0s[s]];
        const b = rowBuf[c1s[s]];
        if (a > 0 && b > 0) {
          for (let i = row + s; i < row + e; i++) out[i] = color;
          rowArea += e - s;
        } else if (a <= 0 && b <= 0) {
          for (let i = row + s; i < row + e; i++) out[i] = 0;
        } else {
          for (let dx = s; dx < e; dx++) {
            const on = a + (b - a) * wxs[dx] > 0;
            out[row + dx] = on ? color : 0;
            if (on) rowArea++;
          }
        }
      }
    } else if (base) {
      for (let dx = rx0; dx < rx1; dx++) out[row + dx] = base[irow + pxs[dx]] ? color : 0;
    } else {
      out.fill(0, row + rx0, row + rx1);
      rowArea = 0;
    }
    if (eb && iy >= eb[1] && iy <= eb[3]) {
      rowArea = -1;
      for (let dx = rx0; dx < rx1; dx++) {
        const ix = pxs[dx];
        if (ix < eb[0] || ix > eb[2]) continue;
        const e = edit[irow + ix];
        if (e === 1) out[row + dx] = color;
        else if (e === 2) out[row + dx] = 0;
      }
    }
    const dimRow = taken && (!takenRows || takenRows[iy]);
    if (!dimRow && rowArea >= 0) {
      area += rowArea;
      continue;
    }
    for (let dx = rx0; dx < rx1; dx++) {
      if (out[row + dx] === 0) continue;
      if (dimRow && taken[irow + pxs[dx]]) out[row + dx] = dim;
      else area++;
    }
  }
  return area;
}

/** The accepted masks: labels (Uint16Array at image size, 0 = none) -> colors[label]. */
export function paintLabels(out, tables, labels, colors, width) {
  const { width: dw, height: dh, x: tx, y: ty } = tables;
  for (let dy = 0; dy < dh; dy++) {
    const row = dy * dw;
    const irow = ty.px[dy] * width;
    for (let dx = 0; dx < dw; dx++) out[row + dx] = colors[labels[irow + tx.px[dx]]];
  }
}

/**
 * Write an uncompressed RLE's 1-runs into a row-major array with `value` (the runs walk the
 * image column by column); `rows` (optional Uint8Array): set to 1 for every row touched.
 */
export function fillRuns(target, counts, width, height, value, rows = null) {
  const total = width * height;
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    const end = Math.min(total, pos + counts[i]);
    if (i % 2 === 1) {
      let x = Math.floor(pos / height);
      let y = pos - x * height;
      for (let p = pos; p < end; p++) {
        target[y * width + x] = value;
        if (rows) rows[y] = 1;
        if (++y === height) {
          y = 0;
          x++;
        }
      }
    }
    pos = end;
  }
}

/**
 * Box [c0, r0, c1, r1] (inclusive) of the low-res cells that can be inside the mask: cells with
 * a positive logit, grown by one (a bilinear sample is positive only next to one); null if none.
 */
export function logitsBox(logits) {
  let c0 = 256;
  let r0 = 256;
  let c1 = -1;
  let r1 = -1;
  for (let r = 0; r < 256; r++) {
    const row = r * 256;
    for (let c = 0; c < 256; c++) {
      if (logits[row + c] > 0) {
        if (c < c0) c0 = c;
        if (c > c1) c1 = c;
        if (r < r0) r0 = r;
        r1 = r;
      }
    }
  }
  if (c1 < 0) return null;
  return [Math.max(0, c0 - 1), Math.max(0, r0 - 1), Math.min(255, c1 + 1), Math.min(255, r1 + 1)];
}

/** Display rect [x0, y0, x1, y1) whose samples use low-res cells inside `box` (logitsBox). */
export function lowResRect(tables, box) {
  if (!box) return null;
  const span = (t, lo, hi) => {
    let a = -1;
    let b = -1;
    for (let d = 0; d < t.i0.length; d++) {
      if (t.i1[d] >= lo && t.i0[d] <= hi) {
        if (a < 0) a = d;
        b = d;
      }
    }
    return a < 0 ? null : [a, b + 1];
  };
  const xs = span(tables.x, box[0], box[2]);
  const ys = span(tables.y, box[1], box[3]);
  return xs && ys ? [xs[0], ys[0], xs[1], ys[1]] : null;
}

/** The smallest rect holding two rects [x0, y0, x1, y1) (either may be null). */
export function unionRect(a, b) {
  if (!a) return b;
  if (!b) return a;
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
}

/** Display rect [x0, y0, x1, y1) covering an image pixel box [x0, y0, x1, y1] (inclusive). */
export function displayRect(tables, box) {
  if (!box) return null;
  const find = (px, lo, hi) => {
    let a = -1;
    let b = -1;
    for (let d = 0; d < px.length; d++) {
      if (px[d] >= lo && px[d] <= hi) {
        if (a < 0) a = d;
        b = d;
      }
    }
    return a < 0 ? null : [a, b + 1];
  };
  const xs = find(tables.x.px, box[0], box[2]);
  const ys = find(tables.y.px, box[1], box[3]);
  if (!xs || !ys) return null;
  return [xs[0], ys[0], xs[1], ys[1]];
}
