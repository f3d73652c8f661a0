// IndexedDB writes complete after the call that starts them returns, and a page that unloads
// first (a reload, a closed tab) aborts them. A Journal holds the values whose write is not
// confirmed yet and, on pagehide, copies them synchronously to localStorage under a key of
// this page; the next page load takes every such copy back and writes it again. Only
// unconfirmed writes are copied, so the journal is empty or a few records long.

const PREFIX = "sam-annotator-journal";
const pageId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
let instances = 0;

export class Journal {
  /** name: what is journaled ("outbox", "drafts"); each instance writes its own key. */
  constructor(name) {
    this.prefix = `${PREFIX}:${name}:`;
    this.key = `${this.prefix}${pageId}-${instances++}`;
    this.pending = new Map(); // id -> {value, ticket}
    this.ticket = 0;
    if (typeof window !== "undefined") {
      window.addEventListener("pagehide", () => this.dump());
      // Back from the back/forward cache: the writes went on, the copy is not needed.
      window.addEventListener("pageshow", (ev) => ev.persisted && this.drop());
    }
  }

  /** Note that `value` is being written under `id`; returns the call that confirms it. */
  begin(id, value) {
    const ticket = ++this.ticket;
    this.pending.set(id, { value, ticket });
    return () => {
      if (this.pending.get(id)?.ticket === ticket) this.pending.delete(id);
    };
  }

  /** Copy the unconfirmed values to localStorage (synchronous: safe in pagehide). */
  dump() {
    try {
      if (!this.pending.size) localStorage.removeItem(this.key);
      else localStorage.setItem(this.key, JSON.stringify([...this.pending.values()].map((p) => p.value)));
    } catch (err) {
      console.warn("journal: could not copy unsaved writes", err);
    }
  }

  drop() {
    try {
      localStorage.removeItem(this.key);
    } catch (err) {
      /* storage unavailable: nothing was copied */
    }
  }

  /** The values left by earlier pages that unloaded mid-write; removed from localStorage. */
  take() {
    const out = [];
    try {
      const keys = [];
      for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i);
        if (k && k.startsWith(this.prefix) && !k.startsWith(this.prefix + pageId)) keys.push(k);
      }
      for (const k of keys.sort()) {
        try {
          out.push(...JSON.parse(localStorage.getItem(k) || "[]"));
        } catch (err) {
          console.warn("journal: unreadable entry dropped", k, err);
        }
        localStorage.removeItem(k);
      }
    } catch (err) {
      console.warn("journal: localStorage unavailable", err);
    }
    return out;
  }
}
