// Islands: 8-connected regions of positive low-res logits on the 256x256 grid. A decode keeps
// the islands that something of its prompt touches (the cell of a positive point, a cell of
// the box, a positive cell of mask_input: what the previous step or a reopened mask showed)
// and sets the cells of the others to ISLAND_LOGIT, in all four outputs; when no island is
// touched nothing changes. Same rule as annotator_backend/decoding.py drop_islands.

const SIDE = 256;
const CELLS = SIDE * SIDE;
export const ISLAND_LOGIT = -1;

/** Grid cell of a resized-1024 coordinate (one cell is 4x4 of that frame). */
const cell = (v) => Math.min(Math.max(Math.floor(v * 0.25), 0), SIDE - 1);

/** The cells the prompt touches (Uint8Array of 256 x 256), or null when none. */
function touchedCells(coords, labels, count, maskInput) {
  const touched = new Uint8Array(CELLS);
  let any = false;
  let topLeft = null;
  let bottomRight = null;
  for (let i = 0; i < count; i++) {
    const x = cell(coords[2 * i]);
    const y = cell(coords[2 * i + 1]);
    if (labels[i] === 1) any = touched[y * SIDE + x] = 1;
    else if (labels[i] === 2) topLeft = [x, y];
    else if (labels[i] === 3) bottomRight = [x, y];
  }
  if (topLeft && bottomRight) {
    for (let y = topLeft[1]; y <= bottomRight[1]; y++) {
      for (let x = topLeft[0]; x <= bottomRight[0]; x++) any = touched[y * SIDE + x] = 1;
    }
  }
  if (maskInput) for (let i = 0; i < CELLS; i++) if (maskInput[i] > 0) any = touched[i] = 1;
  return any ? touched : null;
}

/** Drop the untouched islands of low-res logits `masks` (M x 256 x 256, in place). */
export function dropIslands(masks, coords, labels, count, maskInput = null) {
  const touched = touchedCells(coords, labels, count, maskInput);
  if (!touched) return;
  const kept = new Uint8Array(CELLS);
  const stack = new Int32Array(CELLS);
  for (let k = 0; k < masks.length / CELLS; k++) {
    const m = masks.subarray(k * CELLS, (k + 1) * CELLS);
    kept.fill(0);
    let top = 0;
    const push = (i) => {
      if (!kept[i] && m[i] > 0) {
        kept[i] = 1;
        stack[top++] = i;
      }
    };
    for (let i = 0; i < CELLS; i++) if (touched[i]) push(i);
    if (!top) continue;
    while (top) {
      const i = stack[--top];
      const x = i % SIDE;
      const y = (i - x) / SIDE;
      for (let yy = Math.max(y - 1, 0); yy <= Math.min(y + 1, SIDE - 1); yy++) {
        for (let xx = Math.max(x - 1, 0); xx <= Math.min(x + 1, SIDE - 1); xx++) push(yy * SIDE + xx);
      }
    }
    for (let i = 0; i < CELLS; i++) if (m[i] > 0 && !kept[i]) m[i] = ISLAND_LOGIT;
  }
}
