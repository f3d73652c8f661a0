// The regions of a decoded mask that its prompt asks for, on the 256x256 low-res grid (same
// rule as annotator_backend/decoding.py tidy_masks, which applies it to all four outputs;
// the worker to the ones the page can show: 1..3 for a multimask prompt, else 0):
//   * islands, 8-connected regions of positive logits: kept when something of the prompt
//     touches them (the cell of a positive point, a cell of the box, a positive cell of
//     mask_input: what the previous step or a reopened mask showed), else set to ISLAND_LOGIT;
//     when no island is touched nothing changes.

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

/** Mark in `kept` the cells of `m` (positive logits) 8-connected to a positive touched cell. */
function markTouched(m, touched, kept, stack) {
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

/**
 * Tidy low-res logits `masks` (M x 256 x 256) in place, in the outputs listed: drop the
 * untouched islands.
 */
export function tidyMasks(masks, coords, labels, count, maskInput = null, outputs = [0, 1, 2, 3]) {
  const touched = touchedCells(coords, labels, count, maskInput);
  if (!touched) return;
  const marks = new Uint8Array(CELLS);
  const stack = new Int32Array(CELLS);
  for (const k of outputs) {
    const m = masks.subarray(k * CELLS, (k + 1) * CELLS);
    marks.fill(0);
    if (!markTouched(m, touched, marks, stack)) continue;
    for (let i = 0; i < CELLS; i++) if (m[i] > 0 && !marks[i]) m[i] = ISLAND_LOGIT;
  }
}
