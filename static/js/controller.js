// The annotator's actions on one image: prompts -> decode (worker) -> draw, undo/redo/clear,
// multimask choice and accept, each logged as an event through the outbox.

import { ActiveTimer, AnnotationSession, uuid4 } from "./events.js";
import { PromptState, chosenIndex, chosenLogits } from "./prompts.js";
import { mark } from "./status.js";

const roundMs = (ms) => Math.round(ms * 100) / 100;

export class Annotator {
  /** deps: {decoder, renderer, outbox, status, categories: [{id, name, color}]} */
  constructor(deps) {
    Object.assign(this, deps);
    this.prompts = new PromptState();
    this.timer = new ActiveTimer();
    this.categoryIndex = 0;
    this.image = null;
    this.accepted = [];
    this.decodes = 0;
    this.onCategory = () => {};
  }

  get category() {
    return this.categories[this.categoryIndex] || null;
  }

  get size() {
    return this.image ? [this.image.width, this.image.height] : null;
  }

  /** Open an image from GET /next: load its pixels and its embedding, start a session. */
  async open(next, loadPixels) {
    this.image = null;
    this.prompts.reset();
    this.timer.reset();
    this.clicks = 0;
    const { image, model } = next;
    this.key = `image-${image.id}-model-${model.id}`;
    this.session = new AnnotationSession(image.id, model.id);
    mark("session", this.session.id);
    const color = (cid) => (this.categories.find((c) => c.id === cid) || {}).color;
    this.accepted = (next.masks || []).map((m) => ({
      key: `db-${m.id}`, id: m.id, category_id: m.category_id, rle: m.rle, color: color(m.category_id),
    }));
    const [img, emb] = await Promise.all([
      loadPixels(image.url),
      this.decoder.loadEmbedding(this.key, next.embedding_url),
    ]);
    mark("embeddingMs", emb.loadMs.toFixed(1));
    this.image = image;
    this.renderer.setImage(img, image.width, image.height);
    this.renderer.drawAccepted(this.accepted);
    this.redraw();
  }

  selectCategory(i) {
    if (i < 0 || i >= this.categories.length) return;
    this.categoryIndex = i;
    this.onCategory(i);
    this.redraw();
  }

  /** Decode `step` (latest prompt wins); resolves with the worker's reply or null. */
  async decodeStep(step, t0 = null) {
    const [w, h] = this.size;
    const res = await this.decoder.schedule(() => {
      if (step.result || !this.prompts.steps.includes(step)) return null;
      return { key: this.key, req: this.prompts.request(step, w, h) };
    });
    if (res.type === "error") this.status.message(`decode failed: ${res.message}`, true);
    if (res.type !== "decoded") return null;
    step.result = { masks: res.masks, iou: res.iou, index: res.index, decodeMs: res.decodeMs };
    this.decodes++;
    this.status.set("decode", `decode ${res.decodeMs.toFixed(0)} ms`);
    mark("lastDecodeMs", res.decodeMs.toFixed(2));
    mark("decodeCount", this.decodes);
    if (step === this.prompts.current) this.redraw(t0);
    return res;
  }

  /** Draw the current prompt state; decode it first when it has no result yet. */
  async refresh() {
    const step = this.prompts.current;
    this.redraw();
    if (step && !this.prompts.isEmpty && !step.result) return this.decodeStep(step);
    return null;
  }

  redraw(t0 = null) {
    if (!this.image) return;
    const step = this.prompts.current;
    const color = this.category ? this.category.color : "#1f77b4";
    this.renderer.drawPrompts(step ? step.points : []);
    const area = this.renderer.drawCurrent(this.prompts.displayLogits(), color);
    mark("maskArea", area);
    if (t0 !== null) mark("lastPaintMs", (performance.now() - t0).toFixed(2));
  }

  /**
   * Log an event now (stored in the outbox at once, so a closed page cannot lose it); when
   * `decoding` is given, sending waits for it to fill in the decoder latency.
   */
  log(type, payload, decoding = null) {
    const ev = this.session.event(type, payload);
    const hold = decoding && decoding.then((res) => ({ decoder_ms: res ? roundMs(res.decodeMs) : null }));
    return this.outbox.add(ev, hold);
  }

  point(x, y, label, t0) {
    if (!this.image) return undefined;
    this.timer.touch();
    this.clicks++;
    const step = this.prompts.addPoint(x, y, label);
    this.redraw();
    return this.log("click", { x, y, label }, this.decodeStep(step, t0));
  }

  historyAction(type, apply) {
    if (!this.image || !apply()) return undefined;
    this.timer.touch();
    return this.log(type, {}, this.refresh());
  }

  undo() {
    return this.historyAction("undo", () => this.prompts.canUndo && (this.prompts.undo(), true));
  }

  redo() {
    return this.historyAction("redo", () => this.prompts.canRedo && (this.prompts.redo(), true));
  }

  clear() {
    return this.historyAction("clear", () => this.prompts.clear());
  }

  /** Cycle through the multimask candidates 1..3 after a single positive click. */
  cycle() {
    const step = this.prompts.current;
    if (!step || !step.result || step.result.index === 0) return undefined;
    const index = (chosenIndex(step) % 3) + 1;
    step.override = index;
    this.timer.touch();
    this.redraw();
    this.status.message(`candidate ${index} (predicted IoU ${step.result.iou[index].toFixed(2)})`);
    return this.log("multimask_choice", { index });
  }

  /** Accept the current mask: RLE at image size (worker), event, local overlay. */
  async accept() {
    if (!this.image || this.accepting) return;
    this.accepting = true;
    try {
      await this.decoder.idle();
      const step = this.prompts.current;
      if (!step || this.prompts.isEmpty) return this.status.message("Nothing to accept: click on the object first");
      if (!step.result) await this.refresh();
      const logits = chosenLogits(step);
      const cat = this.category;
      if (!logits) return this.status.message("The mask could not be decoded", true);
      if (!cat) return this.status.message("Pick a category first", true);
      this.timer.touch();
      const enc = await this.decoder.encode(logits, this.image.width, this.image.height);
      if (enc.area === 0) return this.status.message("Empty mask: not accepted", true);
      const maskUuid = uuid4();
      const ev = this.session.event("accept", {
        mask_uuid: maskUuid,
        category_id: cat.id,
        rle: enc.rle,
        active_ms: Math.round(this.timer.activeMs),
        clicks: this.clicks,
        strokes: 0,
      });
      await this.outbox.add(ev);
      const entry = { key: maskUuid, id: null, category_id: cat.id, rle: enc.rle, color: cat.color };
      this.accepted.push(entry);
      this.renderer.drawAccepted(this.accepted);
      this.prompts.reset();
      this.timer.reset();
      this.clicks = 0;
      this.redraw();
      mark("acceptedCount", this.accepted.length);
      this.status.message(`accepted (${enc.area} px, ${cat.name})`);
      this.outbox.waitAck(ev.uuid).then((ack) => {
        if (ack && ack.ok) {
          entry.id = ack.mask_id;
          mark("lastMaskId", ack.mask_id);
        }
      });
    } finally {
      this.accepting = false;
    }
    return undefined;
  }
}
