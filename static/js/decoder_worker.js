// Web Worker running SAM's prompt encoder + mask decoder (ONNX) with onnxruntime-web.
//
// Protocol (every request carries an `id`; every reply echoes it):
//   -> {type: "init", id, modelUrl, wasmPaths, backend: "auto"|"wasm"|"webgpu", numThreads?}
//   <- {type: "ready", id, backend, numThreads, crossOriginIsolated, loadMs}
//   -> {type: "embedding", id, key, url}              fetch + keep [1,256,64,64] float32
//   <- {type: "embedding-ready", id, key, loadMs, bytes}
//   -> {type: "decode", id, key, coords, labels, count, maskInput|null, multimask}
//   <- {type: "decoded", id, key, masks (4x256x256), iou (4), index, decodeMs, waitMs}
//   <- {type: "dropped", id, by}                      a newer decode superseded this one
//   -> {type: "encode", id, draft}                    draft mask -> COCO RLE at image size
//        draft: {logits|null, base: counts|null, strokes, clip: [counts], width, height}
//   <- {type: "encoded", id, rle: {size, counts}, area, bbox, encodeMs}
//   -> {type: "forget", id, key}                      drop a cached embedding
//   <- {type: "error", id, message}
// Decodes run one at a time; while one runs only the newest pending decode is kept.

import { draftMaskRle } from "./composite.js";
import { pickIndex } from "./prompts.js";

const EMBEDDING_SHAPE = [1, 256, 64, 64];
const EMBEDDING_BYTES = 4 * 256 * 64 * 64;
const MAX_EMBEDDINGS = 3; // current image + prefetched ones (issue 6)

let ort = null;
let session = null;
let backend = null;
const embeddings = new Map(); // key -> ort.Tensor
let running = false;
let pending = null;
let zeroMask = null;
let noMask = null;
let withMask = null;

const reply = (msg, transfer = []) => self.postMessage(msg, transfer);
const now = () => performance.now();
const yieldToEvents = () => new Promise((r) => setTimeout(r, 0));

async function webgpuUsable() {
  if (!self.navigator || !navigator.gpu) return false;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return false;
    const info = adapter.info || {};
    return !(adapter.isFallbackAdapter || info.isFallbackAdapter);
  } catch {
    return false;
  }
}

async function fetchBytes(url, what) {
  const resp = await fetch(url, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`${what}: HTTP ${resp.status} for ${url}`);
  return { buf: await resp.arrayBuffer(), headers: resp.headers };
}

async function init(msg) {
  const t0 = now();
  const wantGpu =
    msg.backend === "webgpu" || (msg.backend !== "wasm" && (await webgpuUsable()));
  const bundle = wantGpu ? "ort.all.min.mjs" : "ort.wasm.min.mjs";
  const [mod, model] = await Promise.all([
    import(`${msg.wasmPaths}${bundle}`),
    fetchBytes(msg.modelUrl, "decoder model"),
  ]);
  ort = mod.default && mod.default.InferenceSession ? mod.default : mod;
  ort.env.wasm.wasmPaths = msg.wasmPaths;
  ort.env.wasm.proxy = false; // already off the main thread
  const cores = self.navigator?.hardwareConcurrency || 1;
  // Must be set before the first session: later changes are ignored by onnxruntime-web.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? msg.numThreads || Math.min(2, cores) : 1;
  const bytes = new Uint8Array(model.buf);
  const opts = { graphOptimizationLevel: "all" };
  if (wantGpu) {
    try {
      session = await ort.InferenceSession.create(bytes, { ...opts, executionProviders: ["webgpu"] });
      backend = "webgpu";
    } catch (err) {
      console.warn("WebGPU session failed, falling back to WASM:", err);
    }
  }
  if (!session) {
    session = await ort.InferenceSession.create(bytes, { ...opts, executionProviders: ["wasm"] });
    backend = "wasm";
  }
  zeroMask = new ort.Tensor("float32", new Float32Array(256 * 256), [1, 1, 256, 256]);
  noMask = new ort.Tensor("float32", new Float32Array([0]), [1]);
  withMask = new ort.Tensor("float32", new Float32Array([1]), [1]);
  // Warm-up decode on a zero embedding: the first run allocates, keep that off the first click.
  const warm = new ort.Tensor("float32", new Float32Array(EMBEDDING_BYTES / 4), EMBEDDING_SHAPE);
  await run(warm, new Float32Array([512, 512, 0, 0]), new Float32Array([1, -1]), 2, null);
  reply({
    type: "ready",
    id: msg.id,
    backend,
    numThreads: ort.env.wasm.numThreads,
    crossOriginIsolated: !!self.crossOriginIsolated,
    loadMs: now() - t0,
  });
}

async function loadEmbedding(msg) {
  const t0 = now();
  const { buf, headers } = await fetchBytes(msg.url, "embedding");
  const shape = headers.get("X-Embedding-Shape");
  if (buf.byteLength !== EMBEDDING_BYTES || (shape && shape.replace(/\s/g, "") !== "1,256,64,64")) {
    throw new Error(`embedding has ${buf.byteLength} bytes, shape ${shape}; expected 1,256,64,64 float32`);
  }
  // ort may not be loaded yet when the embedding arrives first: keep the raw array until then.
  embeddings.set(msg.key, new Float32Array(buf));
  while (embeddings.size > MAX_EMBEDDINGS) embeddings.delete(embeddings.keys().next().value);
  reply({ type: "embedding-ready", id: msg.id, key: msg.key, loadMs: now() - t0, bytes: buf.byteLength });
}

function embeddingTensor(key) {
  const e = embeddings.get(key);
  if (!e) throw new Error(`no embedding loaded for ${key}`);
  if (e instanceof Float32Array) {
    const t = new ort.Tensor("float32", e, EMBEDDING_SHAPE);
    embeddings.set(key, t);
    return t;
  }
  return e;
}

async function run(embedding, coords, labels, count, maskInput) {
  const feeds = {
    image_embeddings: embedding,
    point_coords: new ort.Tensor("float32", coords, [1, count, 2]),
    point_labels: new ort.Tensor("float32", labels, [1, count]),
    mask_input: maskInput ? new ort.Tensor("float32", maskInput, [1, 1, 256, 256]) : zeroMask,
    has_mask_input: maskInput ? withMask : noMask,
  };
  const out = await session.run(feeds);
  return { masks: out.low_res_masks.data, iou: out.iou_predictions.data };
}

const own = (a) => (a.buffer instanceof ArrayBuffer && a.byteOffset === 0 ? a : a.slice());

async function decode(msg) {
  const start = now();
  const { masks, iou } = await run(
    embeddingTensor(msg.key), msg.coords, msg.labels, msg.count, msg.maskInput,
  );
  const decodeMs = now() - start;
  const m = own(masks);
  const i = own(iou);
  reply(
    {
      type: "decoded", id: msg.id, key: msg.key, masks: m, iou: i,
      index: pickIndex(i, msg.multimask), decodeMs, waitMs: start - msg.receivedAt,
    },
    [m.buffer, i.buffer],
  );
}

/** Run decodes one at a time; the newest pending request wins, stale ones are dropped. */
async function drain(first) {
  running = true;
  let msg = first;
  try {
    while (msg) {
      try {
        await decode(msg);
      } catch (err) {
        reply({ type: "error", id: msg.id, message: String(err?.message || err) });
      }
      await yieldToEvents(); // let queued requests arrive, so only the newest runs next
      msg = pending;
      pending = null;
    }
  } finally {
    running = false;
  }
}

function encode(msg) {
  const t0 = now();
  const { size, counts, area, bbox } = draftMaskRle(msg.draft);
  reply({ type: "encoded", id: msg.id, rle: { size, counts }, area, bbox, encodeMs: now() - t0 });
}

self.onmessage = async (ev) => {
  const msg = ev.data;
  try {
    switch (msg.type) {
      case "init":
        return await init(msg);
      case "embedding":
        return await loadEmbedding(msg);
      case "forget":
        embeddings.delete(msg.key);
        return reply({ type: "forgotten", id: msg.id, key: msg.key });
      case "encode":
        return encode(msg);
      case "decode":
        msg.receivedAt = now();
        if (!session) throw new Error("decoder not initialised");
        if (running) {
          if (pending) reply({ type: "dropped", id: pending.id, by: msg.id });
          pending = msg;
          return undefined;
        }
        return await drain(msg);
      default:
        throw new Error(`unknown message type ${msg.type}`);
    }
  } catch (err) {
    reply({ type: "error", id: msg.id, message: String(err?.message || err) });
  }
  return undefined;
};
