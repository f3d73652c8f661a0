// The history of one image's annotation: every undoable step is an entry (the event that
// logged it: {id: event uuid, type, payload}); undo moves the last entry to the redo stack,
// redo moves it back, a new entry empties the redo stack. The mask being drafted is a fold
// over the entries since the last reset (clear, accept, select = reopen an accepted mask for
// editing, or delete of the mask being edited). annotator_backend/replay.py folds the event
// log with the same rules.
//
// Entry types: click {x, y, label}, box {x0, y0, x1, y1}, stroke / erase {path, radius},
// multimask_choice {index, target}, clear {}, select {mask ref, category_id}, accept {...},
// delete {mask ref}, category_change {mask ref, category_id, from_category_id}.

import { chosenLogits, promptRequest } from "./prompts.js";

export const PROMPT_TYPES = new Set(["click", "box"]);
export const STROKE_TYPES = new Set(["stroke", "erase"]);
/** Entries that only the draft sees (persisted with it, replayed into it). */
export const DRAFT_TYPES = new Set(["click", "box", "stroke", "erase", "multimask_choice", "select"]);

export const isReset = (e) => e.type === "clear" || e.type === "accept" || e.type === "select" || !!e.reset;

export class History {
  constructor(entries = []) {
    this.entries = entries;
    this.redoStack = [];
  }

  get canUndo() {
    return this.entries.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }

  push(entry) {
    entry.result = entry.result || null;
    this.entries.push(entry);
    this.redoStack = [];
    return entry;
  }

  undo() {
    const e = this.entries.pop() || null;
    if (e) this.redoStack.push(e);
    return e;
  }

  redo() {
    const e = this.redoStack.pop() || null;
    if (e) this.entries.push(e);
    return e;
  }

  /** Index of the first entry of the current draft (after the last reset). */
  windowStart() {
    let i = this.entries.length - 1;
    while (i >= 0 && !isReset(this.entries[i])) i--;
    return i + 1;
  }

  /** The draft: a fold over the entries since the last reset. */
  draft() {
    const start = this.windowStart();
    const head = start > 0 ? this.entries[start - 1] : null;
    const base = head && head.type === "select" ? head : null;
    const points = [];
    let box = null;
    const prompts = []; // [{entry, points, box}]
    const strokes = [];
    const overrides = new Map();
    for (const e of this.entries.slice(start)) {
      const p = e.payload;
      if (e.type === "click") points.push({ x: p.x, y: p.y, label: p.label });
      else if (e.type === "box") box = { x0: p.x0, y0: p.y0, x1: p.x1, y1: p.y1 };
      else if (STROKE_TYPES.has(e.type)) strokes.push({ kind: e.type, path: p.path, radius: p.radius });
      else if (e.type === "multimask_choice") overrides.set(p.target, p.index);
      if (PROMPT_TYPES.has(e.type)) prompts.push({ entry: e, points: points.slice(), box });
    }
    return new DraftState(base, prompts, strokes, overrides);
  }

  /** The draft's entries for persistence: from the select that opened it (if any). */
  draftEntries() {
    const start = this.windowStart();
    const head = start > 0 ? this.entries[start - 1] : null;
    const from = head && head.type === "select" ? start - 1 : start;
    return this.entries
      .slice(from)
      .filter((e) => DRAFT_TYPES.has(e.type))
      .map((e) => ({ id: e.id, type: e.type, payload: e.payload }));
  }
}

export class DraftState {
  constructor(base, prompts, strokes, overrides) {
    this.base = base; // the select entry of a reopened mask, or null
    this.prompts = prompts;
    this.strokes = strokes;
    this.overrides = overrides;
  }

  get isEmpty() {
    return !this.base && this.prompts.length === 0 && this.strokes.length === 0;
  }

  get latest() {
    return this.prompts.length ? this.prompts[this.prompts.length - 1] : null;
  }

  /** True while a hover preview is meaningful: no prompt yet and no reopened mask. */
  get hoverable() {
    return !this.base && this.prompts.length === 0;
  }

  /** The first prompt (in order) up to `target` without a result: what must decode next. */
  nextToDecode(target = this.latest) {
    for (const p of this.prompts) {
      if (!p.entry.result) return p;
      if (p === target) break;
    }
    return null;
  }

  /**
   * The ONNX request of prompt `p` (its predecessors decoded). baseLogits(): the mask_input of
   * the reopened mask. Returns null while the previous prompt has no result.
   */
  request(p, width, height, baseLogits) {
    const i = this.prompts.indexOf(p);
    let maskInput = null;
    if (i > 0) {
      maskInput = chosenLogits(this.prompts[i - 1].entry, this.overrides);
      if (!maskInput) return null;
      maskInput = new Float32Array(maskInput);
    } else if (this.base) {
      maskInput = baseLogits();
    }
    return promptRequest(p.points, p.box, maskInput, width, height);
  }

  /**
   * What to show as the model layer: {logits, full} of the latest decoded prompt (while the
   * latest one is decoding, the one before it; full: image-size logits of the official decoder
   * format, else null), {base: true} with no prompt on a reopened mask, or {}.
   */
  modelLayer() {
    for (let i = this.prompts.length - 1; i >= 0; i--) {
      const entry = this.prompts[i].entry;
      const logits = chosenLogits(entry, this.overrides);
      if (logits) return { logits, full: entry.result.full || null, stale: i !== this.prompts.length - 1 };
    }
    if (this.prompts.length) return { logits: null, stale: true };
    return this.base ? { base: true } : {};
  }

  /** Candidates of the latest prompt when it used the multimask outputs, else null. */
  candidates() {
    const p = this.latest;
    if (!p || !p.entry.result || p.entry.result.index === 0) return null;
    const chosen = this.overrides.get(p.entry.id) ?? p.entry.result.index;
    return { entry: p.entry, iou: p.entry.result.iou, masks: p.entry.result.masks, chosen };
  }
}
