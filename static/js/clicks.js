// The click rule: a point ends up on the side of the mask its label asks for. For each point
// (in prompt order) whose low-res cell an output puts on the wrong side, a Gaussian bump
// (SIGMA cells, cut at RADIUS) is added around it so that the cell ends MARGIN on the label's
// side: l += s (|l_c| + MARGIN) g, s = +1 for a positive point, -1 for a negative one. Points
// the decoder honours change nothing. The worker applies it after the islands rule and again
// after edge snapping. Same float64 arithmetic, stored as float32, as
// annotator_backend/click_rule.py (tests/browser/test_click_rule.py holds them together).

import { cell } from "./islands.js";

const SIDE = 256;
const CELLS = SIDE * SIDE;
export const SIGMA = 3;
export const RADIUS = 9;
export const MARGIN = 4;

const WIDTH = 2 * RADIUS + 1;
const BUMP = new Float64Array(WIDTH * WIDTH);
for (let dy = -RADIUS; dy <= RADIUS; dy++) {
  for (let dx = -RADIUS; dx <= RADIUS; dx++) {
    BUMP[(dy + RADIUS) * WIDTH + dx + RADIUS] = Math.exp(-(dx * dx + dy * dy) / (2 * SIGMA * SIGMA));
  }
}

/**
 * Apply the click rule in place to `outputs` of `masks` (4 x 256 x 256 logits): `coords`
 * (2 per point, resized-1024 frame) and `labels` (1 positive, 0 negative; boxes and padding
 * are left out) of `count` points. Returns whether anything changed.
 */
export function enforceClicks(masks, coords, labels, count, outputs) {
  let changed = false;
  for (const k of outputs) {
    const base = k * CELLS;
    for (let i = 0; i < count; i++) {
      if (labels[i] !== 0 && labels[i] !== 1) continue;
      const s = labels[i] === 1 ? 1 : -1;
      const x = cell(coords[2 * i]);
      const y = cell(coords[2 * i + 1]);
      const logit = masks[base + y * SIDE + x];
      if (s * logit > 0) continue;
      changed = true;
      const amp = s * (Math.abs(logit) + MARGIN);
      const [y0, y1] = [Math.max(y - RADIUS, 0), Math.min(y + RADIUS + 1, SIDE)];
      const [x0, x1] = [Math.max(x - RADIUS, 0), Math.min(x + RADIUS + 1, SIDE)];
      for (let yy = y0; yy < y1; yy++) {
        const row = (yy - y + RADIUS) * WIDTH - x + RADIUS;
        for (let xx = x0; xx < x1; xx++) masks[base + yy * SIDE + xx] += amp * BUMP[row + xx];
      }
    }
  }
  return changed;
}
