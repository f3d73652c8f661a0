// The image's masks on the annotator: load them, accept the draft, reopen an accepted mask for
// editing, delete, change category, hide/show, and what undo/redo of those does. Rules (also
// in the page's help):
//   * overlap: Enter stores only the pixels no visible accepted mask holds (earlier masks win,
//     nothing is overwritten); Shift+Enter stores the mask as drawn, overlapping them;
//   * editing: a reopened mask is the draft's starting layer and the first prompt's
//     mask_input; accepting stores a new mask that replaces it (the old one is marked deleted
//     by the same event, in the same transaction).
// A mask is referred to by its client UUID (masks made in this tool) or its database id.

import { DraftStore } from "./draft_store.js";
import { uuid4 } from "./events.js";
import { maskInputFromBinary } from "./masks.js";
import { decodeCounts, decompressCounts } from "./rle.js";
import { mark } from "./status.js";

const ACTIVE = "accepted";

const methods = {
  loadMasks(list) {
    const color = (cid) => (this.categories.find((c) => c.id === cid) || {}).color;
    this.masks = list.map((m) => ({
      key: m.uuid || `db-${m.id}`,
      id: m.id,
      uuid: m.uuid || null,
      category_id: m.category_id,
      counts: typeof m.rle.counts === "string" ? decompressCounts(m.rle.counts) : m.rle.counts,
      color: color(m.category_id),
      status: ACTIVE,
      hidden: false,
      editing: false,
      pending: false,
    }));
  },

  /** Masks in the list: accepted ones (the one being edited included). */
  liveMasks() {
    return this.masks.filter((m) => m.status === ACTIVE);
  },

  showMasks() {
    const color = (cid) => (this.categories.find((c) => c.id === cid) || {}).color;
    for (const m of this.masks) m.color = color(m.category_id);
    this.renderer.setAccepted(this.liveMasks());
    mark("acceptedCount", this.liveMasks().length);
  },

  ref(m) {
    return m.uuid ? { mask_uuid: m.uuid } : { mask_id: m.id };
  },

  maskByRef(p) {
    if (!p) return null;
    return this.masks.find((m) => (p.mask_uuid ? m.uuid === p.mask_uuid : m.id === p.mask_id)) || null;
  },

  /** Mark the mask the draft reopened; redraw the accepted layer when that changes. */
  syncEditing(d) {
    const editing = d.base ? this.maskByRef(d.base.payload) : null;
    let changed = false;
    for (const m of this.masks) {
      const e = m === editing;
      if (m.editing !== e) changed = true;
      m.editing = e;
    }
    if (changed) this.showMasks();
  },

  baseMask(select) {
    if (!select.base) {
      const [w, h] = this.size;
      select.base = decodeCounts(select.counts || this.maskByRef(select.payload).counts, w, h);
    }
    return select.base;
  },

  baseLogits(select) {
    if (!select.logits) select.logits = maskInputFromBinary(this.baseMask(select), ...this.size);
    return new Float32Array(select.logits);
  },

  /**
   * Accept the draft: its mask at image size (worker), an accept event, a new mask in the list.
   * overlap: keep the pixels that visible accepted masks hold (Shift+Enter).
   */
  async accept(overlap = false) {
    if (!this.image || this.accepting) return;
    this.accepting = true;
    try {
      this.hoverPos = null;
      const adopting = this.history.draft().prompts.map((p) => p.entry.awaiting).filter(Boolean);
      await Promise.all(adopting); // clicks taking over a running preview decode
      await this.decodeDraft();
      await this.decoder.idle();
      const d = this.history.draft();
      if (d.isEmpty) return this.status.message("Nothing to accept: click on the object or paint it first");
      const cat = this.category;
      if (!cat) return this.status.message("Pick a category first", true);
      const layer = d.modelLayer();
      if (layer.stale) return this.status.message("The mask could not be decoded", true);
      const editing = d.base ? this.maskByRef(d.base.payload) : null;
      const clip = overlap ? [] : this.liveMasks().filter((m) => !m.hidden && m !== editing);
      const [width, height] = this.size;
      const { entries } = this.history;
      const [count, last] = [entries.length, entries[entries.length - 1]];
      const enc = await this.decoder.encode({
        logits: layer.logits || null,
        base: layer.base ? d.base.counts || editing.counts : null,
        strokes: d.strokes,
        clip: clip.map((m) => m.counts),
        width,
        height,
      });
      if (this.history.entries !== entries || entries.length !== count || entries[count - 1] !== last) {
        return this.status.message("The mask changed while it was being accepted: press Enter again", true);
      }
      if (enc.area === 0) return this.status.message("Empty mask: not accepted", true);
      this.timer.touch(); // up to the accept
      const uuid = uuid4();
      const payload = {
        mask_uuid: uuid,
        category_id: cat.id,
        rle: enc.rle,
        active_ms: Math.round(this.timer.activeMs),
        clicks: this.counters.clicks,
        strokes: this.counters.strokes,
        overlap,
        clip: clip.map((m) => this.ref(m)),
        replaces: editing ? this.ref(editing) : null,
      };
      const mask = { key: uuid, id: null, uuid, category_id: cat.id, counts: enc.rle.counts, color: cat.color };
      Object.assign(mask, { status: ACTIVE, hidden: false, editing: false, pending: true });
      const before = { timer: this.timer.snapshot(), counters: { ...this.counters } };
      const entry = this.step("accept", payload, { mask, replaced: editing, before });
      this.masks.push(mask);
      if (editing) editing.status = "replaced";
      this.timer.reset();
      this.counters = { clicks: 0, strokes: 0 };
      this.showMasks();
      this.redraw();
      this.saveDraft();
      this.status.message(`accepted (${enc.area} px, ${cat.name})`);
      this.outbox.waitAck(entry.id).then((ack) => {
        mask.pending = false;
        if (ack && ack.ok) {
          mask.id = ack.mask_id;
          mark("lastMaskId", ack.mask_id);
        } else {
          mask.status = "rejected"; // the server refused it (the reason is in the status line)
          this.status.message(`The server refused the mask: ${ack ? ack.error : "no answer"}`, true);
          this.showMasks();
        }
        this.hooks.changed(this.history.draft());
      });
    } finally {
      this.accepting = false;
    }
    return undefined;
  },

  /** Reopen an accepted mask for editing (the current draft is set aside: undo brings it back). */
  select(m) {
    if (!this.image || !m || m.status !== ACTIVE || m.editing) return;
    this.hoverPos = null;
    this.step("select", { ...this.ref(m), category_id: m.category_id }, { counts: m.counts });
    const i = this.categories.findIndex((c) => c.id === m.category_id);
    if (i >= 0) this.selectCategory(i);
    this.settleStale();
    this.redraw();
    this.saveDraft();
    this.decodeDraft();
  },

  /** Reopen the visible mask under image pixel (x, y), if any. */
  selectAt(x, y) {
    const label = this.renderer.labelAt(x, y);
    const shown = this.liveMasks().filter((m) => !m.hidden && !m.editing);
    if (label > 0) this.select(shown[label - 1]);
  },

  deleteMask(m) {
    if (!this.image || !m || m.status !== ACTIVE) return;
    const reset = m.editing; // deleting the mask being edited ends the edit
    this.step("delete", this.ref(m), { mask: m, reset });
    m.status = "deleted";
    this.settleStale();
    this.showMasks();
    this.redraw();
    this.saveDraft();
  },

  /** Delete the mask being edited. */
  deleteEditing() {
    this.deleteMask(this.masks.find((m) => m.editing && m.status === ACTIVE));
  },

  changeCategory(m, categoryId) {
    if (!this.image || !m || m.status !== ACTIVE || m.category_id === categoryId) return;
    const payload = { ...this.ref(m), category_id: categoryId, from_category_id: m.category_id };
    this.step("category_change", payload, { mask: m });
    m.category_id = categoryId;
    this.showMasks();
    this.redraw();
  },

  toggleHidden(m) {
    if (!this.image || !m || m.status !== ACTIVE) return;
    m.hidden = !m.hidden;
    this.log(m.hidden ? "hide" : "show", this.ref(m));
    this.showMasks();
    this.redraw();
  },

  /** What undoing a history entry does to the masks. */
  undoEffects(e) {
    if (e.type === "accept") {
      e.mask.status = "undone";
      if (e.replaced) e.replaced.status = ACTIVE;
      this.timer.restore(e.before.timer);
      this.counters = { ...e.before.counters };
    } else if (e.type === "delete") {
      e.mask.status = ACTIVE;
    } else if (e.type === "category_change") {
      e.mask.category_id = e.payload.from_category_id;
    }
    this.showMasks();
  },

  redoEffects(e) {
    if (e.type === "accept") {
      e.mask.status = ACTIVE;
      if (e.replaced) e.replaced.status = "replaced";
      this.timer.reset();
      this.counters = { clicks: 0, strokes: 0 };
    } else if (e.type === "delete") {
      e.mask.status = "deleted";
    } else if (e.type === "category_change") {
      e.mask.category_id = e.payload.category_id;
    }
    this.showMasks();
  },

  /** Rebuild the draft saved by an earlier page load of this image, if any. */
  async restoreDraft(modelId) {
    this.draftKey = DraftStore.key(this.userId, this.image.id, modelId);
    const rec = this.drafts ? await this.drafts.get(this.draftKey) : null;
    if (!rec || !rec.entries || !rec.entries.length) return;
    const head = rec.entries[0];
    if (head.type === "select" && !this.maskByRef(head.payload)) return; // that mask is gone
    for (const e of rec.entries) this.history.push({ ...e, result: null });
    this.history.redoStack = [];
    this.timer.restore(rec.timer);
    this.counters = { ...rec.counters };
    if (rec.category !== undefined) this.selectCategory(rec.category);
    const ids = rec.entries.map((e) => e.id);
    this.log("draft_restore", { from_session: rec.session, from_seq: rec.seq, entries: ids });
    this.saveDraft();
    mark("restoredEntries", ids.length);
  },
};

/** Add the mask-level actions to the Annotator class. */
export function installMaskActions(cls) {
  Object.assign(cls.prototype, methods);
}
