// Main-thread side of the decoder worker: promise-based requests, and a scheduler that keeps
// at most one decode in flight plus the newest waiting one. The waiting request is built
// only when it is sent, so it sees the logits of the decode that just finished.

const WASM_PATHS = "/static/vendor/ort/";

export class DecoderClient {
  constructor(workerUrl = "/static/js/decoder_worker.js") {
    this.worker = new Worker(workerUrl, { type: "module" });
    this.nextId = 1;
    this.waiting = new Map(); // id -> {resolve, reject}
    this.info = null;
    this.inFlight = null; // promise of the decode being run
    this.queued = null; // {build, resolve}
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
   * Latest prompt wins: `build()` returns {key, req} or null and is called only when the
   * decode can start. A call made while another is queued replaces it; the replaced call
   * resolves with {type: "dropped"}.
   */
  schedule(build) {
    return new Promise((resolve) => {
      if (this.queued) this.queued.resolve({ type: "dropped" });
      this.queued = { build, resolve };
      if (!this.inFlight) this.pump();
    });
  }

  async pump() {
    while (this.queued) {
      const { build, resolve } = this.queued;
      this.queued = null;
      let job = null;
      try {
        job = build();
      } catch (err) {
        resolve({ type: "error", message: String(err) });
        continue;
      }
      if (!job) {
        resolve({ type: "dropped" });
        continue;
      }
      this.inFlight = this.decode(job.key, job.req).catch((err) => ({
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

  /** Resolves once no decode is running or queued. */
  idle() {
    if (!this.inFlight && !this.queued) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Chosen logits -> uncompressed COCO RLE at image resolution (computed in the worker). */
  encode(logits, width, height) {
    return this.call("encode", { logits: new Float32Array(logits), width, height });
  }

  terminate() {
    this.worker.terminate();
    this.failAll(new Error("decoder terminated"));
  }
}
