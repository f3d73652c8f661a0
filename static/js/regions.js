// The regions of a decoded mask that its prompt asks for, on the 256x256 low-res grid (same
// rules as annotator_backend/decoding.py tidy_masks, which applies them to all four outputs;
// the worker to the ones the page can show: 1..3 for a multimask prompt, else 0):
//   * islands, 8-connected regions of positive logits: kept when something of the prompt
//     touches them (the cell of a positive point, a cell of the box, a positive cell of
//     mask_input: what the previous step or a reopened mask showed), else set to ISLAND_LOGIT;
//     when no island is touched nothing changes;
//   * then holes, 4-connected regions of the other cells that do not reach the grid's border:
//     kept when they hold the cell of a negative point, else set to HOLE_LOGIT.

const SIDE = 256;
const CELLS = SIDE * SIDE;
export const ISLAND_LOGIT = -1;
export const HOLE_LOGIT = 1;

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

/** Set the non-positive cells of `m` that neither the border nor a negative point reaches (4-connected) to HOLE_LOGIT. */
function fillHoles(m, negatives, outside, stack) {
  let top = 0;
  const seed = (i) => {
    if (!outside[i] && m[i] <= 0) {
      outside[i] = 1;
      stack[top++] = i;
    }
  };
  for (let i = 0; i < SIDE; i++) {
    seed(i);
    seed(CELLS - SIDE + i);
    seed(i * SIDE);
    seed(i * SIDE + SIDE - 1);
  }
  for (const i of negatives) seed(i);
  while (top) {
    const i = stack[--top];
    const x = i & (SIDE - 1);
    if (x > 0) seed(i - 1);
    if (x < SIDE - 1) seed(i + 1);
    if (i >= SIDE) seed(i - SIDE);
    if (i < CELLS - SIDE) seed(i + SIDE);
  }
  for (let i = 0; i < CELLS; i++) if (!outside[i] && m[i] <= 0) m[i] = HOLE_LOGIT;
}

/**
 * Tidy low-res logits `masks` (M x 256 x 256) in place, in the outputs listed: drop the
 * untouched islands, then fill the holes no negative point touches.
 */
export function tidyMasks(masks, coords, labels, count, maskInput = null, outputs = [0, 1, 2, 3]) {
  const touched = touchedCells(coords, labels, count, maskInput);
  const negatives = [];
  for (let i = 0; i < count; i++) {
    if (labels[i] === 0) negatives.push(cell(coords[2 * i + 1]) * SIDE + cell(coords[2 * i]));
  }
  const marks = new Uint8Array(CELLS);
  const stack = new Int32Array(CELLS);
  for (const k of outputs) {
    const m = masks.subarray(k * CELLS, (k + 1) * CELLS);
    marks.fill(0);
    if (touched && markTouched(m, touched, marks, stack)) {
      for (let i = 0; i < CELLS; i++) if (m[i] > 0 && !marks[i]) m[i] = ISLAND_LOGIT;
    }
    marks.fill(0);
    fillHoles(m, negatives, marks, stack);
  }
}
