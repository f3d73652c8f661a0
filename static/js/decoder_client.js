// Main-thread side of the decoder worker: promise-based requests, and a scheduler that keeps
// at most one decode in flight plus the newest waiting one per lane (prompt, hover). The
// waiting request is built only when it is sent, so it sees the logits of the decode that
// just finished.

import { BITMAP_OPTIONS } from "./edge_snap.js";
import { embeddingFloats } from "./fp16.js";

const WASM_PATHS = "/static/vendor/ort/";
// Embeddings kept in the worker: the open image, the prefetched next one and one more. Not
// above the worker's own limit, so the worker never drops one this side still counts on.
const MAX_EMBEDDINGS = 3;

/**
 * How the worker runs a decoder URL of the server's, from its `variant` parameter:
 * {format: "contract" | "split" | "official", prepareUrl, noMaskUrl}. "split" (and "split_int8")
 * come with the URLs of their per-image graph (variant "prepare") and of their per-click graph
 * for prompts without a mask input ("nomask", "nomask_int8"); "official" is the benchmark anchor.
 */
export function decoderFormat(url) {
  const u = new URL(url, location.origin);
  const variant = u.searchParams.get("variant");
  const format = { official: "official", split: "split", split_int8: "split" }[variant] || "contract";
  if (format !== "split") return { format, prepareUrl: null, noMaskUrl: null };
  const sibling = (v) => {
    u.searchParams.set("variant", v);
    return u.pathname + u.search;
  };
  return { format, prepareUrl: sibling("prepare"), noMaskUrl: sibling(variant.replace("split", "nomask")) };
}

export class DecoderClient {
  constructor(workerUrl = "/static/js/decoder_worker.js") {
    this.worker = new Worker(workerUrl, { type: "module" });
    this.nextId = 1;
    this.waiting = new Map(); // id -> {resolve, reject}
    this.info = null;
    this.inFlight = null; // promise of the decode being run
    this.queued = { prompt: null, hover: null }; // lane -> {build, resolve}
    this.idleWaiters = [];
    this.embeddings = new Map(); // key -> promise of the load, oldest first
    this.guides = new Map(); // key -> the worker's edge-snapping guide of the image, or null
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

  /**
   * Load the ONNX decoder. backend: "auto" (WebGPU when usable, else WASM), "wasm", "webgpu";
   * fault: "webgpu" (tests). The URL's variant says how the worker runs it (decoderFormat).
   * Resolves {backend, fallback, numThreads, crossOriginIsolated, loadMs, format}.
   */
  async init(modelUrl, { backend = "auto", numThreads = 0, fault = null } = {}) {
    const body = { modelUrl, ...decoderFormat(modelUrl), wasmPaths: WASM_PATHS, backend, numThreads, fault };
    this.info = await this.call("init", body);
    return this.info;
  }

  /** Key of an image's embedding for a model version, here and in the worker. */
  embeddingKey(imageId, modelId) {
    return `image-${imageId}-model-${modelId}`;
  }

  /**
   * Fetch an image's embedding into the worker, under `key`, once: a key loaded or loading
   * (prefetch) resolves from that load; a failed load is retried. The server sends raw
   * float16 or float32 (header X-Embedding-Dtype); it is converted to float32 here, once per
   * image. With `image` (a promise of the decoded <img>), the worker gets its pixels too, for
   * edge snapping (edge_snap.js).
   * Resolves {key, dtype, bytes (on the wire), snap (masks will be snapped to the image's
   * edges), loadMs = fetchMs + convertMs + handoffMs}.
   */
  loadEmbedding(key, url, image = null) {
    const known = this.embeddings.get(key);
    if (known) return known.catch(() => this.loadEmbedding(key, url, image));
    const load = this.fetchEmbedding(key, url, image);
    this.embeddings.set(key, load);
    load.catch(() => {
      if (this.embeddings.get(key) === load) this.embeddings.delete(key);
    });
    for (const old of this.embeddings.keys()) {
      if (this.embeddings.size <= MAX_EMBEDDINGS) break;
      this.forget(old).catch(() => {}); // reaches the worker before the new embedding
    }
    return load;
  }

  async fetchEmbedding(key, url, image) {
    const t0 = performance.now();
    const resp = await fetch(url, { credentials: "same-origin" });
    if (!resp.ok) throw new Error(`embedding: HTTP ${resp.status} for ${url}`);
    const dtype = resp.headers.get("X-Embedding-Dtype") || "float32"; // servers before issue 6
    const shape = (resp.headers.get("X-Embedding-Shape") || "1,256,64,64").replace(/\s/g, "");
    const buf = await resp.arrayBuffer();
    const t1 = performance.now();
    const floats = embeddingFloats(buf, dtype);
    if (shape !== "1,256,64,64" || floats.length !== 256 * 64 * 64) {
      throw new Error(`embedding of shape ${shape}, ${buf.byteLength} bytes of ${dtype}; expected 1,256,64,64`);
    }
    const t2 = performance.now();
    // The worker takes embeddings by URL: hand it the float32 values as a same-origin blob.
    const blobUrl = URL.createObjectURL(new Blob([floats]));
    let ready;
    try {
      // an image that cannot be read leaves its masks unsnapped
      const bitmap = image && (await image.then((img) => createImageBitmap(img, BITMAP_OPTIONS)).catch(() => null));
      ready = await this.call("embedding", { key, url: blobUrl, bitmap }, bitmap ? [bitmap] : []);
      this.guides.set(key, ready.guide);
    } finally {
      URL.revokeObjectURL(blobUrl);
    }
    const t3 = performance.now();
    return {
      key, dtype, bytes: buf.byteLength, snap: !!ready.guide,
      loadMs: t3 - t0, fetchMs: t1 - t0, convertMs: t2 - t1, handoffMs: t3 - t2,
    };
  }

  forget(key) {
    this.embeddings.delete(key);
    this.guides.delete(key);
    return this.call("forget", { key });
  }

  /**
   * One decode, sent now. Resolves {type: "decoded", ...} or {type: "dropped"} when the
   * worker superseded it with a newer one. A decoded reply with `unsnapped` candidates comes
   * with the image's `guide` and the request's `prompt`, to snap them when picked
   * (prompts.chosenLogits).
   */
  decode(key, req) {
    // req.maskInput is the request's own copy (draft.request): moved to the worker, not cloned.
    const m = req.maskInput || null;
    const owned = m && m.byteOffset === 0 && m.byteLength === m.buffer.byteLength;
    const maskInput = m && !owned ? new Float32Array(m) : m;
    const body = {
      key,
      coords: req.coords,
      labels: req.labels,
      count: req.count,
      maskInput,
      multimask: req.multimask,
      size: req.size,
    };
    const prompt = { coords: req.coords, labels: req.labels, count: req.count };
    const attach = (msg) => (msg.unsnapped?.length ? { ...msg, guide: this.guides.get(key), prompt } : msg);
    return this.call("decode", body, maskInput ? [maskInput.buffer] : []).then(attach);
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
