// The annotator's actions on one image: prompts (points, boxes), brush/eraser strokes, the
// multimask choice, undo/redo/clear and the hover preview; each step is logged as an event
// through the outbox, pushed on the history (draft.js) and saved with the draft. Mask-level
// actions (accept, reopen, delete, category, hide) are in mask_actions.js.

import { History, PROMPT_TYPES } from "./draft.js";
import { ActiveTimer, AnnotationSession } from "./events.js";
import { installHover } from "./hover.js";
import { installMaskActions } from "./mask_actions.js";
import { mark } from "./status.js";
import { EditLayer, installStrokes } from "./strokes_tool.js";

const roundMs = (ms) => (ms === null || ms === undefined ? null : Math.round(ms * 100) / 100);
/** Event types that start the active timer of a new mask. */
const STARTS_MASK = new Set(["click", "box", "stroke", "erase", "select"]);

export class Annotator {
  /** deps: {decoder, renderer, outbox, drafts, status, categories, userId} */
  constructor(deps) {
    Object.assign(this, deps);
    this.history = new History();
    this.timer = new ActiveTimer();
    this.counters = { clicks: 0, strokes: 0 };
    this.categoryIndex = 0;
    this.image = null;
    this.masks = [];
    this.decodes = 0;
    this.paints = 0; // redraws that ended a click (lastPaintMs)
    this.hoverDecodes = 0;
    this.radius = 8;
    this.preview = true; // hover preview on
    this.overlay = { band: null, cursor: null };
    this.unsettled = new Set(); // prompt entries whose event waits for its decoder latency
    this.hooks = { category: () => {}, changed: () => {} };
  }

  get category() {
    return this.categories[this.categoryIndex] || null;
  }

  get color() {
    return this.category ? this.category.color : "#1f77b4";
  }

  get size() {
    return this.image ? [this.image.width, this.image.height] : null;
  }

  /**
   * Open an image from GET /next (or /open): pixels, embedding, masks, saved draft (decoded
   * once `ready`, the decoder's loading, resolves).
   */
  async open(next, loadPixels, via = "next", ready = Promise.resolve()) {
    this.image = null;
    this.settleAll();
    this.history = new History();
    this.timer.reset();
    this.counters = { clicks: 0, strokes: 0 };
    this.hoverResult = null;
    const { image, model } = next;
    this.key = this.decoder.embeddingKey(image.id, model.id);
    this.session = new AnnotationSession(image.id, model.id);
    mark("session", this.session.id);
    this.loadMasks(next.masks || []);
    const pixels = loadPixels(image.url);
    const [img, emb] = await Promise.all([pixels, this.decoder.loadEmbedding(this.key, next.embedding_url, pixels)]);
    mark("embeddingMs", emb.loadMs.toFixed(1));
    mark("edgeSnap", emb.snap ? "on" : "off");
    this.image = image;
    this.edits = new EditLayer(image.width, image.height);
    this.editSig = [];
    this.renderer.setImage(img, image.width, image.height);
    this.showMasks();
    this.log("image_open", { via });
    await this.restoreDraft(model.id);
    this.redraw();
    await ready;
    this.decodeDraft();
  }

  selectCategory(i) {
    if (i < 0 || i >= this.categories.length) return;
    this.categoryIndex = i;
    this.hooks.category(i);
    this.redraw();
  }

  /**
   * Log an event now (stored in the outbox at once, so a closed page cannot lose it). `hold`:
   * a promise of fields to add before sending (the decoder latency). Returns the event.
   */
  log(type, payload, hold = null, entry = null, decoderMs = null) {
    const ev = this.session.event(type, payload, roundMs(decoderMs));
    if (this.timer.started || STARTS_MASK.has(type)) this.timer.touch(ev.client_ts);
    if (entry) entry.id = ev.uuid;
    const h = typeof hold === "function" ? hold(ev) : hold;
    this.outbox.add(ev, h);
    mark("loggedEvents", this.session.seq);
    return ev;
  }

  /** Log a draft or history step and push it on the history; returns the entry. */
  step(type, payload, extra = {}) {
    const entry = { type, payload, result: null, ...extra };
    let hold = null;
    if (PROMPT_TYPES.has(type) && !entry.result) {
      this.unsettled.add(entry);
      hold = new Promise((resolve) => {
        entry.settle = (ms) => resolve({ decoder_ms: roundMs(ms) });
      });
    }
    this.log(type, payload, hold, entry, entry.result ? entry.result.decodeMs : null);
    this.history.push(entry);
    if (entry.result) this.decodes++;
    return entry;
  }

  settle(entry, ms) {
    if (!this.unsettled.delete(entry)) return;
    entry.settle(ms);
  }

  /** Prompt entries that left the draft undecoded send their event without a latency. */
  settleStale() {
    const live = new Set(this.history.draft().prompts.map((p) => p.entry));
    for (const e of [...this.unsettled]) if (!live.has(e)) this.settle(e, null);
  }

  settleAll() {
    for (const e of [...this.unsettled]) this.settle(e, null);
  }

  /**
   * Decode the draft's prompts in order up to the latest (prompt lane: latest request wins,
   * the chain continues in whichever call runs). Resolves with the last reply or null.
   */
  async decodeDraft(t0 = null) {
    if (!this.image) return null;
    const [w, h] = this.size;
    const key = this.key;
    let last = null;
    for (;;) {
      let target = null;
      const res = await this.decoder.schedule(() => {
        if (this.key !== key) return null;
        const d = this.history.draft();
        const p = d.nextToDecode();
        const req = p && !p.entry.awaiting && d.request(p, w, h, () => this.baseLogits(d.base));
        if (!req) return null;
        target = p.entry;
        return { key, req };
      }, "prompt");
      if (res.type === "error") {
        this.status.message(`decode failed: ${res.message}`, true);
        if (target) this.settle(target, null);
        return last;
      }
      if (res.type !== "decoded" || !target || res.key !== this.key) return last;
      const { masks, iou, index, decodeMs, full, unsnapped, guide, prompt } = res;
      target.result = { masks, iou, index, decodeMs, full, unsnapped, guide, prompt };
      this.settle(target, res.decodeMs);
      this.decodes++;
      last = res;
      this.status.set("decode", `decode ${res.decodeMs.toFixed(0)} ms`);
      mark("lastDecodeMs", res.decodeMs.toFixed(2));
      mark("decodeCount", this.decodes);
      const d = this.history.draft();
      if (d.latest && d.latest.entry === target) this.redraw(t0);
    }
  }

  /** The layers of the current mask, with the hover preview when there is one to show. */
  layers(d) {
    const hv = this.hoverResult;
    const m = hv && this.hoverPos && d.hoverable ? { logits: hv.logits, full: hv.full } : d.modelLayer();
    return {
      logits: m.logits || null,
      full: m.full || null,
      base: m.base ? this.baseMask(d.base) : null,
      edit: this.edits.box ? this.edits.data : null,
      editBox: this.edits.box,
    };
  }

  /** Redraw the current mask (all of it, or the display pixels of `box` only) and prompts. */
  redraw(t0 = null, { box = null, light = false } = {}) {
    if (!this.image) return;
    const d = this.history.draft();
    this.syncEdits(d);
    if (!light) this.syncEditing(d);
    const area = this.renderer.drawCurrent(this.layers(d), this.color, !this.overlapMode, box);
    if (!box) mark("maskArea", area);
    this.drawPrompts(d);
    if (t0 !== null) mark("lastPaintMs", (performance.now() - t0).toFixed(2), "paintCount", ++this.paints);
    if (!light) this.hooks.changed(d);
  }

  drawPrompts(d = this.history.draft()) {
    const p = d.latest;
    this.renderer.drawPrompts({ points: p ? p.points : [], box: p ? p.box : null, ...this.overlay });
  }

  setOverlay(part) {
    Object.assign(this.overlay, part);
    if (this.image) this.drawPrompts();
  }

  point(x, y, label, t0 = null) {
    if (!this.image) return;
    const d = this.history.draft();
    const reuse = label === 1 && d.hoverable ? this.previewFor(x, y) : null;
    const payload = { x, y, label };
    if (reuse) payload.preview = true; // the hover preview's decode is the click's
    this.hoverResult = null;
    this.hoverPos = null;
    this.counters.clicks++;
    const entry = this.step("click", payload, reuse || {});
    if (entry.result) mark("lastDecodeMs", entry.result.decodeMs.toFixed(2));
    mark("decodeCount", this.decodes);
    // The decode request goes out first; the worker runs it while this thread draws and saves.
    if (entry.awaiting) this.adoptPreview(entry, t0);
    else this.decodeDraft(t0);
    this.redraw(reuse && reuse.result ? t0 : null);
    this.saveDraft();
  }

  box(b) {
    if (!this.image || b.x1 - b.x0 < 1 || b.y1 - b.y0 < 1) return;
    this.hoverResult = null;
    this.counters.clicks++;
    this.step("box", b);
    this.decodeDraft();
    this.redraw();
    this.saveDraft();
  }

  /** Pick multimask candidate `index` (1..3) of the latest single click; logged. */
  choose(index) {
    const c = this.history.draft().candidates();
    if (!c || index < 1 || index > 3 || index === c.chosen) return;
    const iou = Array.from(c.iou.slice(1, 4), (v) => Math.round(v * 1e4) / 1e4);
    this.step("multimask_choice", { index, target: c.entry.id, previous: c.chosen, iou });
    this.status.message(`candidate ${index} (predicted IoU ${c.iou[index].toFixed(2)})`);
    this.redraw();
    this.saveDraft();
  }

  /** Cycle through the multimask candidates 1..3 after a single positive click. */
  cycle() {
    const c = this.history.draft().candidates();
    if (c) this.choose((c.chosen % 3) + 1);
  }

  clear() {
    if (!this.image || this.history.draft().isEmpty) return;
    this.step("clear", {});
    this.settleStale();
    this.redraw();
    this.saveDraft();
  }

  undo() {
    this.travel("undo", () => this.history.undo(), (e) => this.undoEffects(e));
  }

  redo() {
    this.travel("redo", () => this.history.redo(), (e) => this.redoEffects(e));
  }

  travel(type, move, effects) {
    if (!this.image || this.live) return;
    const e = move();
    if (!e) return;
    effects(e);
    this.settleStale();
    const payload = { target: e.id, type: e.type, ...(e.mask ? this.ref(e.mask) : {}) };
    const decoding = this.decodeDraft();
    this.log(type, payload, decoding.then((res) => ({ decoder_ms: res ? roundMs(res.decodeMs) : null })));
    this.redraw();
    this.saveDraft();
  }

  saveDraft() {
    if (!this.drafts || !this.image) return;
    this.drafts.save({
      key: this.draftKey,
      session: this.session.id,
      seq: this.session.seq - 1,
      entries: this.history.draftEntries(),
      timer: this.timer.snapshot(),
      counters: { ...this.counters },
      category: this.categoryIndex,
    });
  }
}

installMaskActions(Annotator);
installHover(Annotator);
installStrokes(Annotator);
