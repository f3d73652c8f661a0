// What the page shows of a decode, as annotator_backend/decoding.py finish_masks: the islands
// no prompt touches dropped (islands.js), the click rule (clicks.js), then, with the image's
// guide, edge snapping (edge_snap.js) and the click rule once more. The worker snaps the chosen
// output at once and the page the other multimask candidates if picked (prompts.chosenLogits).

import { enforceClicks } from "./clicks.js";
import { snapLogits } from "./edge_snap.js";
import { dropIslands } from "./islands.js";

const CELLS = 256 * 256;

/** Snap output `k` of `masks` in place, then apply the click rule of `prompt` to it again. */
export function snapOutput(masks, k, prompt, guide) {
  snapLogits(masks, k * CELLS, guide);
  enforceClicks(masks, prompt.coords, prompt.labels, prompt.count, [k]);
}

/**
 * The `shown` outputs of a decode, in place: islands and the click rule; with a guide, the
 * `chosen` one snapped too. `prompt`: {coords, labels, count} as sent to the decoder.
 */
export function finishShown(masks, prompt, maskInput, shown, chosen, guide) {
  const { coords, labels, count } = prompt;
  dropIslands(masks, coords, labels, count, maskInput, shown);
  enforceClicks(masks, coords, labels, count, shown);
  if (guide) snapOutput(masks, chosen, prompt, guide);
}
