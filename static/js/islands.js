// Islands: 8-connected regions of positive low-res logits on the 256x256 grid. A decode keeps
// the islands that something of its prompt touches (the cell of a positive point, a cell of
// the box, a positive cell of mask_input: what the previous step or a reopened mask showed)
// and sets the cells of the others to ISLAND_LOGIT; when no island is touched nothing changes.
// Same rule as annotator_backend/decoding.py drop_islands, which applies it to all four
// outputs; the worker applies it to the ones the page can show (1..3 if multimask, else 0).

const SIDE = 256;
const CELLS = SIDE * SIDE;
export const ISLAND_LOGIT = -1;

// Scratch buffers, reused by every decode (the worker runs one decode at a time).
const touched = new Uint8Array(CELLS);
const kept = new Uint8Array(CELLS);
const stack = new Int32Array(CELLS);

/** Grid cell of a resized-1024 coordinate (one cell is 4x4 of that frame). */
export const cell = (v) => Math.min(Math.max(Math.floor(v * 0.25), 0), SIDE - 1);

/** Mark in `touched` the cells the prompt touches; false when none. */
function markPrompt(coords, labels, count, maskInput) {
  touched.fill(0);
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
  return any;
}

/** Mark in `kept` the cells of `m` (positive logits) 8-connected to a positive touched cell. */
function markKept(m) {
  kept.fill(0);
  let top = 0;
  for (let i = 0; i < CELLS; i++) {
    if (touched[i] && m[i] > 0) {
      kept[i] = 1;
      stack[top++] = i;
    }
  }
  const found = top > 0;
  while (top) {
    const i = stack[--top];
    const x = i & (SIDE - 1);
    const x0 = x > 0 ? -1 : 0;
    const x1 = x < SIDE - 1 ? 1 : 0;
    for (let dy = i >= SIDE ? -SIDE : 0; dy <= (i < CELLS - SIDE ? SIDE : 0); dy += SIDE) {
      for (let dx = x0; dx <= x1; dx++) {
        const j = i + dy + dx;
        if (!kept[j] && m[j] > 0) {
          kept[j] = 1;
          stack[top++] = j;
        }
      }
    }
  }
  return found;
}

/** Drop the untouched islands of low-res logits `masks` (M x 256 x 256), in place, in `outputs`. */
export function dropIslands(masks, coords, labels, count, maskInput = null, outputs = [0, 1, 2, 3]) {
  if (!markPrompt(coords, labels, count, maskInput)) return;
  for (const k of outputs) {
    const m = masks.subarray(k * CELLS, (k + 1) * CELLS);
    if (!markKept(m)) continue;
    for (let i = 0; i < CELLS; i++) if (m[i] > 0 && !kept[i]) m[i] = ISLAND_LOGIT;
  }
}
