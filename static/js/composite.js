// The mask that gets stored when a draft is accepted, at full image resolution (run in the
// decoder worker). Same rule as annotator_backend/replay.py:
//   1. the model layer: the chosen low-res logits of the latest prompt, upscaled the official
//      way and thresholded at 0 (masks.imageMask); with no prompt, the mask being edited
//      (an accepted mask reopened for editing) or nothing;
//   2. brush and eraser strokes in order (strokes.applyStrokes): brush sets 1, eraser 0;
//   3. unless overlap was asked for, pixels held by the listed earlier masks are removed.

import { imageMask, maskRle } from "./masks.js";
import { fillRuns } from "./paint.js";
import { decodeCounts } from "./rle.js";
import { applyStrokes } from "./strokes.js";

/**
 * draft: {logits: Float32Array 256x256 | null, base: counts | null, strokes: [...],
 * clip: [counts, ...], width, height} -> {size, counts, area, bbox} (uncompressed RLE).
 */
export function draftMaskRle(draft) {
  const { width, height } = draft;
  let mask;
  if (draft.logits) mask = imageMask(draft.logits, width, height);
  else if (draft.base) mask = decodeCounts(draft.base, width, height);
  else mask = new Uint8Array(width * height);
  applyStrokes(mask, width, height, draft.strokes || []);
  for (const counts of draft.clip || []) fillRuns(mask, counts, width, height, 0);
  return maskRle(mask, width, height);
}
