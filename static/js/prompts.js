// The decoding rules of one prompt state (same as annotator_backend/decoding.py and replay.py):
// coordinates in the resized-1024 frame, the mask_input chain and the multimask choice.
//   * the prompt of a click/box entry is every point and the latest box since the draft began;
//   * its mask_input is the chosen low-res logits of the previous click/box entry of the same
//     draft (decoded first when it was not); for the first one of a draft that reopens an
//     accepted mask, that mask (masks.maskInputFromBinary); else none;
//   * a single positive point with no box and no mask_input uses the multimask outputs 1..3
//     and shows the best predicted IoU (the annotator may pick another); else output 0;
//   * the worker drops the islands the prompt does not touch (islands.js) and applies the
//     click rule (clicks.js): each point ends on the side its label asks for.

import { snapOutput } from "./finish.js";
import { modelInputs } from "./geometry.js";

export const LOW_RES_PIXELS = 256 * 256;

/** Output index chosen from the predicted IoUs (decoding.OnnxDecoder.predict). */
export function pickIndex(iou, multimask) {
  if (!multimask) return 0;
  let best = 1;
  for (let i = 2; i <= 3; i++) if (iou[i] > iou[best]) best = i;
  return best;
}

/** Whether a prompt uses the multimask outputs. */
export function usesMultimask(points, box, maskInput) {
  return !box && points.length === 1 && points[0].label === 1 && !maskInput;
}

/** The ONNX request of a prompt: {coords, labels, count, maskInput, multimask, size}. */
export function promptRequest(points, box, maskInput, width, height) {
  const { coords, labels, count } = modelInputs(points, box, width, height);
  const multimask = usesMultimask(points, box, maskInput);
  return { coords, labels, count, maskInput, multimask, size: [width, height] };
}

/** The index a decoded entry shows: the annotator's pick (overrides), else the decode's. */
export function chosenIndex(entry, overrides) {
  if (!entry || !entry.result) return -1;
  const o = overrides ? overrides.get(entry.id) : undefined;
  return o ?? entry.result.index;
}

/** The chosen 256x256 logits of a decoded entry (a view, not a copy), or null. */
export function chosenLogits(entry, overrides) {
  const i = chosenIndex(entry, overrides);
  if (i < 0) return null;
  const r = entry.result;
  if (r.unsnapped?.includes(i) && r.guide) {
    // A candidate the worker left unsnapped: snapped once, when first chosen (finish.js).
    // The list goes with the masks (a hover preview's result is shared): changed in place.
    snapOutput(r.masks, i, r.prompt, r.guide);
    r.unsnapped.splice(r.unsnapped.indexOf(i), 1);
  }
  return r.masks.subarray(i * LOW_RES_PIXELS, (i + 1) * LOW_RES_PIXELS);
}

/** A box from two corners, ordered and clamped to the image. */
export function normBox(a, b, width, height) {
  const cl = (v, hi) => Math.min(Math.max(v, 0), hi);
  return {
    x0: cl(Math.min(a.x, b.x), width),
    y0: cl(Math.min(a.y, b.y), height),
    x1: cl(Math.max(a.x, b.x), width),
    y1: cl(Math.max(a.y, b.y), height),
  };
}
