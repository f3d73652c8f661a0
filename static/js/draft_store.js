// The mask being drafted survives a reload: after every step its entries (the events that
// built it: clicks, boxes, strokes, choices, the reopened mask) are written to IndexedDB
// under (user, image, model); the next page load on that image rebuilds the draft from them
// (decoding its prompts again) and logs a draft_restore event naming the session and seq the
// draft came from, so replay.py rebuilds the same draft. Decode results are not stored.
// A write cut short by the page unloading is kept by the Journal and redone on the next load.

import { Journal } from "./journal.js";

const DB_NAME = "sam-annotator-drafts";
const STORE = "drafts";

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export class DraftStore {
  static async open() {
    try {
      const r = indexedDB.open(DB_NAME, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: "key" });
      const store = new DraftStore(await req(r));
      for (const rec of store.journal.take()) store.save(rec);
      return store;
    } catch (err) {
      console.warn("IndexedDB unavailable, drafts are not kept across reloads:", err);
      return new DraftStore(null);
    }
  }

  constructor(db) {
    this.db = db;
    this.memory = new Map();
    this.chain = Promise.resolve(); // writes in order
    this.journal = new Journal("drafts");
  }

  static key(userId, imageId, modelId) {
    return `${userId}:${imageId}:${modelId}`;
  }

  async get(key) {
    await this.chain;
    if (!this.db) return this.memory.get(key) || null;
    return (await req(this.db.transaction(STORE, "readonly").objectStore(STORE).get(key))) || null;
  }

  /** Write (or, for an empty draft, delete) a record {key, session, seq, entries, ...}. */
  save(rec) {
    const empty = !rec.entries || rec.entries.length === 0;
    const confirmed = this.db ? this.journal.begin(rec.key, rec) : () => {};
    this.chain = this.chain
      .then(() => {
        if (!this.db) {
          if (empty) this.memory.delete(rec.key);
          else this.memory.set(rec.key, rec);
          return undefined;
        }
        const store = this.db.transaction(STORE, "readwrite").objectStore(STORE);
        return req(empty ? store.delete(rec.key) : store.put(rec));
      })
      .then(confirmed)
      .catch((err) => console.warn("draft not saved:", err));
    return this.chain;
  }
}
