// The event outbox: every event is stored (IndexedDB, memory if unavailable) before it is
// sent and removed only when the server acks it after its commit. Unacked events are resent
// on every (re)connect and after an ack timeout; the server dedupes on the event UUID, so
// resending is always safe. Events left by an earlier page load of the same user are resent
// too.

const DB_NAME = "sam-annotator";
const STORE = "outbox";
const RETRY_MS = 5000;

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
    for (const rec of await store.all()) if (rec.owner === owner) box.records.set(rec.uuid, rec);
    box.changed();
    return box;
  }

  constructor(store, transport, owner, onChange) {
    this.store = store;
    this.transport = transport;
    this.owner = owner;
    this.onChange = onChange;
    this.records = new Map(); // uuid -> {uuid, owner, event, created}
    this.sending = new Set();
    this.held = new Set(); // stored, waiting for their decoder latency before sending
    this.acked = 0;
    this.rejected = [];
    this.ackWaiters = new Map(); // uuid -> [resolve]
    this.retryTimer = null;
  }

  get pending() {
    return this.records.size;
  }

  changed() {
    this.onChange(this);
  }

  /**
   * Store the event, then send it. With `hold` (a promise of fields to add, e.g. the decoder
   * latency) it is stored at once but sent only once `hold` settles; a held event found by
   * a later page load is sent as stored. Resolves when stored (not when acked).
   */
  async add(event, hold = null) {
    const rec = { uuid: event.uuid, owner: this.owner, event, created: Date.now() };
    this.records.set(rec.uuid, rec);
    if (hold) this.held.add(rec.uuid);
    this.changed();
    await this.persist(rec);
    if (!hold) {
      this.flush();
      return;
    }
    hold
      .then((patch) => Object.assign(rec.event, patch || {}))
      .catch(() => {})
      .then(async () => {
        this.held.delete(rec.uuid);
        await this.persist(rec);
        this.flush();
      });
  }

  async persist(rec) {
    try {
      await this.store.put(rec);
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

  /** Send every stored, not-in-flight event, in sequence order per session. */
  flush() {
    if (!this.transport.connected) return;
    const recs = [...this.records.values()].filter((r) => !this.sending.has(r.uuid) && !this.held.has(r.uuid));
    recs.sort((a, b) => a.created - b.created || a.event.seq - b.event.seq);
    for (const rec of recs) this.sendOne(rec);
  }

  async sendOne(rec) {
    this.sending.add(rec.uuid);
    let ack = null;
    try {
      ack = await this.transport.send(rec.event);
    } catch (err) {
      // Timeout or disconnect: keep it, retry later or on reconnect.
      this.sending.delete(rec.uuid);
      this.scheduleRetry();
      return;
    }
    this.sending.delete(rec.uuid);
    if (ack && ack.ok !== true && isTransient(ack)) {
      this.scheduleRetry(); // not stored, but worth sending again (e.g. database busy)
      return;
    }
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
  }

  scheduleRetry() {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.flush();
    }, RETRY_MS);
  }
}
