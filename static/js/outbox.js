// The event outbox: every event is stored (IndexedDB, memory if unavailable) before it is
// sent and removed only when the server acks it after its commit. Events are sent one at a
// time in the order they were made (an event may refer to the mask an earlier one created),
// so a resend never overtakes. Unacked events are resent on every (re)connect and after an
// ack timeout; the server dedupes on the event UUID, so resending is always safe. Events left
// by an earlier page load of the same user are resent first. A write IndexedDB has not
// confirmed when the page unloads is kept by the Journal (localStorage) and redone here.

import { Journal } from "./journal.js";

const DB_NAME = "sam-annotator";
const STORE = "outbox";
const RETRY_MS = 3000;
const HOLD_MAX_MS = 20000; // an event waiting for its decoder latency is sent after this anyway

/** Sort key of a new event: time of creation, high resolution, increasing within a page. */
let lastOrder = 0;
function nextOrder() {
  lastOrder = Math.max(lastOrder + 1e-3, performance.timeOrigin + performance.now());
  return lastOrder;
}
const orderOf = (r) => r.order ?? r.created;

/** A refusal that a resend can cure: the server says so with `retry`, or a database error. */
function isTransient(ack) {
  return ack.retry === true || /database error|send it again|log in first/i.test(String(ack.error || ""));
}

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

class IdbStore {
  static async open() {
    const r = indexedDB.open(DB_NAME, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: "uuid" });
    return new IdbStore(await req(r));
  }

  constructor(db) {
    this.db = db;
  }

  tx(mode) {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }

  put(rec) {
    return req(this.tx("readwrite").put(rec));
  }

  delete(uuid) {
    return req(this.tx("readwrite").delete(uuid));
  }

  all() {
    return req(this.tx("readonly").getAll());
  }
}

class MemoryStore {
  constructor() {
    this.map = new Map();
  }

  async put(rec) {
    this.map.set(rec.uuid, rec);
  }

  async delete(uuid) {
    this.map.delete(uuid);
  }

  async all() {
    return [...this.map.values()];
  }
}

export class Outbox {
  /**
   * transport: {connected: bool, send(event) -> Promise<ack>} (see socket.js).
   * owner: the logged-in user's id; only that user's events are sent from this page.
   */
  static async open(transport, owner, onChange = () => {}) {
    let store;
    try {
      store = await IdbStore.open();
    } catch (err) {
      console.warn("IndexedDB unavailable, outbox kept in memory only:", err);
      store = new MemoryStore();
    }
    const box = new Outbox(store, transport, owner, onChange);
    for (const rec of box.journal.take()) await box.persist(rec); // cut short by an unload
    for (const rec of await store.all()) if (rec.owner === owner) box.records.set(rec.uuid, rec);
    box.changed();
    return box;
  }

  constructor(store, transport, owner, onChange) {
    this.store = store;
    this.transport = transport;
    this.owner = owner;
    this.onChange = onChange;
    this.records = new Map(); // uuid -> {uuid, owner, event, created, order}
    this.pumping = false;
    this.held = new Set(); // stored, waiting for their decoder latency before sending
    this.acked = 0;
    this.rejected = [];
    this.ackWaiters = new Map(); // uuid -> [resolve]
    this.retryTimer = null;
    this.journal = new Journal("outbox");
  }

  get pending() {
    return this.records.size;
  }

  changed() {
    this.onChange(this);
  }

  /**
   * Store the event, then send it. With `hold` (a promise of fields to add, e.g. the decoder
   * latency) it is stored at once but sent only once `hold` settles (at most HOLD_MAX_MS);
   * events after it wait for it. A held event found by a later page load is sent as stored.
   * Resolves when stored (not when acked).
   */
  async add(event, hold = null) {
    const rec = { uuid: event.uuid, owner: this.owner, event, created: Date.now(), order: nextOrder() };
    this.records.set(rec.uuid, rec);
    if (hold) this.held.add(rec.uuid);
    this.changed();
    await this.persist(rec);
    if (!hold) {
      this.flush();
      return;
    }
    const timeout = new Promise((r) => setTimeout(() => r(null), HOLD_MAX_MS));
    Promise.race([hold, timeout])
      .then((patch) => Object.assign(rec.event, patch || {}))
      .catch(() => {})
      .then(async () => {
        this.held.delete(rec.uuid);
        await this.persist(rec);
        this.flush();
      });
  }

  async persist(rec) {
    const confirmed = this.journal.begin(rec.uuid, rec);
    try {
      await this.store.put(rec);
      confirmed();
    } catch (err) {
      console.warn("outbox: could not persist event", err);
    }
  }

  /** Resolves with the ack of an event (waits for as many resends as needed). */
  waitAck(uuid) {
    return new Promise((resolve) => {
      const list = this.ackWaiters.get(uuid) || [];
      list.push(resolve);
      this.ackWaiters.set(uuid, list);
    });
  }

  /** The oldest stored event. */
  first() {
    let best = null;
    for (const r of this.records.values()) {
      if (!best || orderOf(r) < orderOf(best) || (orderOf(r) === orderOf(best) && r.event.seq < best.event.seq)) {
        best = r;
      }
    }
    return best;
  }

  /** Send the stored events one by one, oldest first; a held event stops the line. */
  flush() {
    if (this.pumping || !this.transport.connected) return;
    this.pump();
  }

  async pump() {
    this.pumping = true;
    try {
      while (this.transport.connected) {
        const rec = this.first();
        if (!rec || this.held.has(rec.uuid)) break;
        if (!(await this.sendOne(rec))) {
          this.scheduleRetry();
          break;
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Send one event; false when it must be sent again later (timeout, transient refusal). */
  async sendOne(rec) {
    let ack = null;
    try {
      ack = await this.transport.send(rec.event);
    } catch (err) {
      return false; // timeout or disconnect: kept, resent later or on reconnect
    }
    if (ack && ack.ok !== true && isTransient(ack)) return false; // e.g. database busy
    if (!ack || ack.ok !== true) {
      // The server refused it (malformed): resending cannot help. Keep a trace for the UI.
      this.rejected.push({ event: rec.event, error: ack ? ack.error : "no ack" });
      console.error("event rejected by the server", rec.event, ack);
    } else {
      this.acked++;
    }
    this.records.delete(rec.uuid);
    try {
      await this.store.delete(rec.uuid);
    } catch (err) {
      console.warn("outbox: could not delete acked event", err);
    }
    const waiters = this.ackWaiters.get(rec.uuid) || [];
    this.ackWaiters.delete(rec.uuid);
    waiters.forEach((r) => r(ack));
    this.changed();
    return true;
  }

  scheduleRetry() {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.flush();
    }, RETRY_MS);
  }
}
