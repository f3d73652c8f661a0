// Prompt state of the mask being drawn: a stack of steps with undo/redo. Each step is the
// whole prompt after one action (points so far) plus, once decoded, its result. The
// previous step's chosen low-res logits feed the next decode as mask_input (the rule of
// annotator_backend/decoding.py); a cleared step is a barrier: nothing feeds across it.

import { modelInputs } from "./geometry.js";

export const LOW_RES_PIXELS = 256 * 256;

function makeStep(points, box = null) {
  return {
    points, // [{x, y, label}] in image pixels
    box, // {x0, y0, x1, y1} or null (boxes arrive with issue 4)
    result: null, // {masks: Float32Array 4x256x256, iou: Float32Array 4, index, decodeMs}
    override: null, // index picked by the annotator among the multimask candidates
  };
}

export class PromptState {
  constructor() {
    this.steps = [];
    this.undone = [];
  }

  /** The current step, or null when nothing has been prompted. */
  get current() {
    return this.steps.length ? this.steps[this.steps.length - 1] : null;
  }

  get isEmpty() {
    const s = this.current;
    return !s || (s.points.length === 0 && !s.box);
  }

  get canUndo() {
    return this.steps.length > 0;
  }

  get canRedo() {
    return this.undone.length > 0;
  }

  /** Add a point (label 1 positive, 0 negative); returns the new step. */
  addPoint(x, y, label) {
    const prev = this.current;
    const points = prev ? prev.points.slice() : [];
    points.push({ x, y, label });
    return this.push(makeStep(points, prev ? prev.box : null));
  }

  /** Clear the prompts (undoable): pushes an empty step. Returns false if already empty. */
  clear() {
    if (this.isEmpty) return false;
    this.push(makeStep([]));
    return true;
  }

  /** Forget everything, not undoable (after accept, on a new image). */
  reset() {
    this.steps = [];
    this.undone = [];
  }

  push(step) {
    this.steps.push(step);
    this.undone = [];
    return step;
  }

  undo() {
    if (!this.steps.length) return null;
    this.undone.push(this.steps.pop());
    return this.current;
  }

  redo() {
    if (!this.undone.length) return null;
    this.steps.push(this.undone.pop());
    return this.current;
  }

  /** Logits of the nearest decoded step before `step`, stopping at a cleared step. */
  previousLogits(step) {
    let i = this.steps.indexOf(step) - 1;
    for (; i >= 0; i--) {
      const s = this.steps[i];
      if (s.points.length === 0 && !s.box) return null;
      if (s.result) return chosenLogits(s);
    }
    return null;
  }

  /**
   * Logits to show for the current state: its own result, else (while it is being decoded)
   * the latest decoded one before it, so a click does not blank the mask; none once cleared.
   */
  displayLogits() {
    const s = this.current;
    if (!s || this.isEmpty) return null;
    return s.result ? chosenLogits(s) : this.previousLogits(s);
  }

  /**
   * The ONNX request for a step: coordinates in the resized frame, labels, mask_input and
   * whether the multimask outputs are used (a single positive point, no box, no previous
   * mask; the best predicted IoU among outputs 1..3 is chosen, otherwise output 0).
   */
  request(step, width, height) {
    const { coords, labels, count } = modelInputs(step.points, step.box, width, height);
    const maskInput = this.previousLogits(step);
    const multimask =
      !step.box && step.points.length === 1 && step.points[0].label === 1 && maskInput === null;
    return { coords, labels, count, maskInput, multimask };
  }
}

/** The index of the output a step shows: the annotator's pick, else the decode's choice. */
export function chosenIndex(step) {
  if (!step || !step.result) return -1;
  return step.override ?? step.result.index;
}

/** The chosen 256x256 logits of a decoded step (a view, not a copy). */
export function chosenLogits(step) {
  const i = chosenIndex(step);
  if (i < 0) return null;
  return step.result.masks.subarray(i * LOW_RES_PIXELS, (i + 1) * LOW_RES_PIXELS);
}

/** Output index chosen from the predicted IoUs (decoding.OnnxDecoder.predict). */
export function pickIndex(iou, multimask) {
  if (!multimask) return 0;
  let best = 1;
  for (let i = 2; i <= 3; i++) if (iou[i] > iou[best]) best = i;
  return best;
}
