// Main-thread side of the decoder worker: promise-based requests, and a scheduler that keeps
// at most one decode in flight plus the newest waiting one per lane (prompt, hover). The
// waiting request is built only when it is sent, so it sees the logits of the decode that
// just finished.

const WASM_PATHS = "/static/vendor/ort/";

export class DecoderClient {
  constructor(workerUrl = "/static/js/decoder_worker.js") {
    this.worker = new Worker(workerUrl, { type: "module" });
    this.nextId = 1;
    this.waiting = new Map(); // id -> {resolve, reject}
    this.info = null;
    this.inFlight = null; // promise of the decode being run
    this.queued = { prompt: null, hover: null }; // lane -> {build, resolve}
    this.idleWaiters = [];
    this.worker.onmessage = (ev) => this.onMessage(ev.data);
    this.worker.onerror = (ev) => this.failAll(new Error(ev.message || "decoder worker failed"));
  }

  call(type, body = {}, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ type, id, ...body }, transfer);
    });
  }

  onMessage(msg) {
    const w = this.waiting.get(msg.id);
    if (!w) return;
    this.waiting.delete(msg.id);
    if (msg.type === "error") w.reject(new Error(msg.message));
    else w.resolve(msg);
  }

  failAll(err) {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }

  /** Load the ONNX decoder. backend: "auto" (WebGPU when usable, else WASM), "wasm", "webgpu". */
  async init(modelUrl, { backend = "auto", numThreads = 0 } = {}) {
    this.info = await this.call("init", { modelUrl, wasmPaths: WASM_PATHS, backend, numThreads });
    return this.info;
  }

  /** Fetch an image's embedding into the worker, under `key`. */
  loadEmbedding(key, url) {
    return this.call("embedding", { key, url });
  }

  forget(key) {
    return this.call("forget", { key });
  }

  /**
   * One decode, sent now. Resolves {type: "decoded", ...} or {type: "dropped"} when the
   * worker superseded it with a newer one.
   */
  decode(key, req) {
    const body = {
      key,
      coords: req.coords,
      labels: req.labels,
      count: req.count,
      maskInput: req.maskInput ? new Float32Array(req.maskInput) : null,
      multimask: req.multimask,
    };
    return this.call("decode", body);
  }

  /**
   * Latest request wins, in two lanes: "prompt" (the draft's decodes) and "hover" (previews).
   * `build()` returns {key, req} or null and is called only when the decode can start, so it
   * sees the results of the decodes before it. A request replaces the one waiting in its lane
   * (which resolves {type: "dropped"}); a waiting prompt runs before a waiting hover, and a
   * new prompt drops the waiting hover (stale by then).
   */
  schedule(build, lane = "prompt") {
    return new Promise((resolve) => {
      const drop = (l) => {
        if (this.queued[l]) this.queued[l].resolve({ type: "dropped" });
        this.queued[l] = null;
      };
      drop(lane);
      if (lane === "prompt") drop("hover");
      this.queued[lane] = { build, resolve };
      if (!this.inFlight) this.pump();
    });
  }

  takeQueued() {
    for (const lane of ["prompt", "hover"]) {
      const job = this.queued[lane];
      if (job) {
        this.queued[lane] = null;
        return job;
      }
    }
    return null;
  }

  async pump() {
    let job;
    while ((job = this.takeQueued())) {
      const { build, resolve } = job;
      let req = null;
      try {
        req = build();
      } catch (err) {
        resolve({ type: "error", message: String(err) });
        continue;
      }
      if (!req) {
        resolve({ type: "dropped" });
        continue;
      }
      this.inFlight = this.decode(req.key, req.req).catch((err) => ({
        type: "error",
        message: String(err?.message || err),
      }));
      resolve(await this.inFlight);
      this.inFlight = null;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((r) => r());
  }

  /** Resolves once no prompt decode is running or queued (hover previews are dropped). */
  idle() {
    if (this.queued.hover) {
      this.queued.hover.resolve({ type: "dropped" });
      this.queued.hover = null;
    }
    if (!this.inFlight && !this.queued.prompt) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * The draft's mask at image resolution as uncompressed COCO RLE (computed in the worker):
   * draft = {logits | null, base: counts | null, strokes, clip: [counts], width, height}.
   */
  encode(draft) {
    const logits = draft.logits ? new Float32Array(draft.logits) : null;
    return this.call("encode", { draft: { ...draft, logits } }, logits ? [logits.buffer] : []);
  }

  terminate() {
    this.worker.terminate();
    this.failAll(new Error("decoder terminated"));
  }
}
