// Web Worker running SAM's prompt encoder + mask decoder (ONNX) with onnxruntime-web.
//
// Protocol (every request carries an `id`; every reply echoes it):
//   -> {type: "init", id, modelUrl, prepareUrl?, noMaskUrl?, wasmPaths, backend: "auto"|"wasm"|
//       "webgpu", numThreads?, format?: "contract"|"split"|"official", fault?: "webgpu"}
//   <- {type: "ready", id, backend, fallback, numThreads, crossOriginIsolated, loadMs, format}
//   -> {type: "embedding", id, key, url, bitmap?}      fetch + keep [1,256,64,64] float32, and
//        the guide for edge snapping (edge_snap.js) of the image's ImageBitmap, if sent
//   <- {type: "embedding-ready", id, key, loadMs, bytes, guide}   guide: edge snapping's, or null
//   -> {type: "decode", id, key, coords, labels, count, maskInput|null, multimask, size: [w, h]}
//   <- {type: "decoded", id, key, masks (4x256x256), iou (4), index, decodeMs, waitMs, full, graph}
//        the shown masks (1..3 if multimask, else 0) as finish.js makes them: islands, the
//        click rule; snapped if the image came with its embedding: the chosen one (index);
//        `unsnapped` lists the others (the page snaps one when picked); graph: "nomask" when the
//        graph for prompts without a mask input ran, else "decode"
//   <- {type: "dropped", id, by}                      a newer decode superseded this one
//   -> {type: "encode", id, draft}                    draft mask -> COCO RLE at image size
//        draft: {logits|null, base: counts|null, strokes, clip: [counts], width, height}
//   <- {type: "encoded", id, rle: {size, counts}, area, bbox, encodeMs}
//   -> {type: "forget", id, key}                      drop a cached embedding
//   <- {type: "error", id, message}
// Decodes run one at a time; while one runs only the newest pending decode is kept.
//
// Backend: "auto" takes WebGPU where the browser offers it (navigator.gpu and a hardware
// adapter), else WASM; a WebGPU session that cannot be created falls back to WASM by itself,
// and `fallback` says why. `fault: "webgpu"` (tests only) makes the WebGPU path throw.
// Format: "contract" is DESIGN.md §3's decoder (low-res logits, `full` null); "split" is the
// same function in three graphs (annotator_backend/decoder_split.py): `prepareUrl`'s runs once
// per embedding, its outputs replacing the embedding in every decode of that image, and
// `modelUrl`'s at each click, `noMaskUrl`'s instead for prompts without a mask input (first
// clicks, hover previews: the same function with less work). "official" is the official
// demo's export (benchmark anchor): fed `orig_im_size` (from `size`) too, it returns `full`,
// its logits upscaled to the image in the graph (Float32Array h*w); its one low-res mask
// stands in for all four contract outputs.

import { draftMaskRle } from "./composite.js";
import { createSessions, fetchBytes, fetchGraphs, sessionFor } from "./decoder_sessions.js";
import { bitmapGuide } from "./edge_snap.js";
import { finishShown } from "./finish.js";
import { pickIndex } from "./prompts.js";
import { webgpuMissing } from "./webgpu.js";

const EMBEDDING_SHAPE = [1, 256, 64, 64];
const EMBEDDING_BYTES = 4 * 256 * 64 * 64;
const MAX_EMBEDDINGS = 3; // current image + prefetched ones (issue 6)

let ort = null;
let sessions = null; // {decode, prepare, noMask} (decoder_sessions.js)
let backend = null;
let format = "contract";
// key -> {raw: Float32Array, feeds: promise of the image's share of a decode's feeds, or null
// until first needed, guide: promise of the edge-snapping guide or of null}
const embeddings = new Map();
// Session runs, one at a time (a prefetched image's prepare and a click's decode may overlap).
let runChain = Promise.resolve();
const serially = (fn) => {
  const result = runChain.then(fn);
  runChain = result.catch(() => {});
  return result;
};
let running = false;
let pending = null;
let maskFeeds = null; // {zero, off, on}: mask_input without a mask, has_mask_input 0 and 1

const reply = (msg, transfer = []) => self.postMessage(msg, transfer);
const now = () => performance.now();
// A macrotask without setTimeout's clamping (4 ms once nested): lets queued requests arrive.
const tick = new MessageChannel();
const ticks = [];
tick.port1.onmessage = () => ticks.shift()();
const yieldToEvents = () =>
  new Promise((r) => {
    ticks.push(r);
    tick.port2.postMessage(0);
  });

/** Run with new sessions; every image is prepared again for them. */
function useSessions(created) {
  runChain = Promise.resolve();
  sessions = created;
  for (const e of embeddings.values()) e.feeds = null;
}

async function init(msg) {
  const t0 = now();
  const wanted = ["official", "split"].includes(msg.format) ? msg.format : "contract";
  let fallback = null;
  let wantGpu = msg.backend === "webgpu" || msg.fault === "webgpu";
  if (!wantGpu && msg.backend !== "wasm") {
    fallback = await webgpuMissing();
    wantGpu = !fallback;
  }
  const bundle = wantGpu ? "ort.all.min.mjs" : "ort.wasm.min.mjs";
  const [mod, graphs] = await Promise.all([import(`${msg.wasmPaths}${bundle}`), fetchGraphs(msg)]);
  ort = mod.default && mod.default.InferenceSession ? mod.default : mod;
  ort.env.wasm.wasmPaths = msg.wasmPaths;
  ort.env.wasm.proxy = false; // already off the main thread
  const cores = self.navigator?.hardwareConcurrency || 1;
  // Must be set before the first session: later changes are ignored by onnxruntime-web.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? msg.numThreads || Math.min(2, cores) : 1;
  const create = (provider) => createSessions(ort, graphs, provider);
  let created = null; // a later init (another model) replaces the sessions only once they work
  if (wantGpu) {
    try {
      if (msg.fault === "webgpu") throw new Error("simulated failure (fault=webgpu)");
      created = await create("webgpu");
      backend = "webgpu";
    } catch (err) {
      fallback = `WebGPU session failed: ${err?.message || err}`;
      console.warn(`${fallback}; falling back to WASM`);
    }
  }
  const wasm = () => create("wasm");
  if (!created) {
    created = await wasm();
    backend = "wasm";
  }
  format = wanted;
  useSessions(created);
  const flag = (v) => new ort.Tensor("float32", new Float32Array([v]), [1]);
  maskFeeds = { zero: new ort.Tensor("float32", new Float32Array(65536), [1, 1, 256, 256]), off: flag(0), on: flag(1) };
  // Warm-up decode on a zero embedding: the first run allocates, keep that off the first click.
  const warm = new ort.Tensor("float32", new Float32Array(EMBEDDING_BYTES / 4), EMBEDDING_SHAPE);
  const warmUp = async () => {
    const image = await prepared(warm);
    const at = [new Float32Array([512, 512, 0, 0]), new Float32Array([1, -1]), 2];
    const masks = sessions.noMask ? [null, maskFeeds.zero.data] : [null]; // each per-click graph
    for (const mask of masks) await run(image, ...at, mask, [64, 48]);
  };
  try {
    await warmUp();
  } catch (err) {
    if (backend !== "webgpu") throw err;
    fallback = `WebGPU decode failed: ${err?.message || err}`; // a session that cannot run
    console.warn(`${fallback}; falling back to WASM`);
    useSessions(await wasm());
    backend = "wasm";
    await warmUp();
  }
  reply({
    type: "ready",
    id: msg.id,
    backend,
    fallback,
    format,
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
  // A guide that cannot be made leaves the logits unsnapped, and says why.
  const guide = msg.bitmap ? Promise.resolve(msg.bitmap).then(bitmapGuide).catch((e) => console.warn(e) || null) : null;
  // ort may not be loaded yet when the embedding arrives first: keep the raw array until then.
  embeddings.set(msg.key, { raw: new Float32Array(buf), feeds: null, guide });
  const ready = await guide; // the page keeps a copy, to snap the candidates it picks
  while (embeddings.size > MAX_EMBEDDINGS) embeddings.delete(embeddings.keys().next().value);
  if (sessions?.prepare) {
    // The per-image half, now; should it fail, the first decode tries again and reports it.
    await imageFeeds(msg.key).catch(() => {});
  }
  reply({ type: "embedding-ready", id: msg.id, key: msg.key, loadMs: now() - t0, bytes: buf.byteLength, guide: ready });
}

/** The per-image graph's outputs for an embedding tensor (format "split"), else the tensor. */
async function prepared(embedding) {
  if (!sessions.prepare) return { image_embeddings: embedding };
  return serially(() => sessions.prepare.run({ image_embeddings: embedding }));
}

/** The image's share of a decode's feeds: its embedding, or its prepared tensors ("split"). */
async function imageFeeds(key) {
  const e = embeddings.get(key);
  if (!e) throw new Error(`no embedding loaded for ${key}`);
  if (!e.feeds) {
    const feeds = prepared(new ort.Tensor("float32", e.raw, EMBEDDING_SHAPE));
    e.feeds = feeds;
    feeds.catch(() => {
      if (e.feeds === feeds) e.feeds = null; // tried again at the next decode
    });
  }
  return e.feeds;
}

async function run(image, coords, labels, count, maskInput, size, multimask, guide = null) {
  const feeds = {
    ...image,
    point_coords: new ort.Tensor("float32", coords, [1, count, 2]),
    point_labels: new ort.Tensor("float32", labels, [1, count]),
    mask_input: maskInput ? new ort.Tensor("float32", maskInput, [1, 1, 256, 256]) : maskFeeds.zero,
    has_mask_input: maskInput ? maskFeeds.on : maskFeeds.off,
  };
  if (format === "official") {
    feeds.orig_im_size = new ort.Tensor("float32", new Float32Array([size[1], size[0]]), [2]);
  }
  const [session, input] = sessionFor(sessions, feeds, !!maskInput);
  const out = await serially(() => session.run(input));
  if (format !== "official") {
    const [masks, iou] = [out.low_res_masks.data, out.iou_predictions.data];
    // the chosen output is snapped now, the other candidates when picked (prompts.chosenLogits)
    const chosen = pickIndex(iou, multimask);
    finishShown(masks, { coords, labels, count }, maskInput, multimask ? [1, 2, 3] : [0], chosen, guide);
    const unsnapped = guide && multimask ? [1, 2, 3].filter((k) => k !== chosen) : [];
    return { masks, iou, full: null, unsnapped, graph: session === sessions.noMask ? "nomask" : "decode" };
  }
  const low = out.low_res_masks.data;
  const masks = new Float32Array(4 * low.length);
  for (let k = 0; k < 4; k++) masks.set(low, k * low.length);
  return { masks, iou: new Float32Array(4).fill(out.iou_predictions.data[0]), full: out.masks.data };
}

/** `a` itself when it owns a transferable buffer (ort's outputs do), else a copy. */
const own = (a) =>
  a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice();

async function decode(msg) {
  const image = await imageFeeds(msg.key); // waits for the image's prepare, if still running
  const guide = await embeddings.get(msg.key)?.guide;
  const start = now();
  const { coords, labels, count, maskInput, size, multimask } = msg;
  const r = await run(image, coords, labels, count, maskInput, size, multimask, guide);
  const decodeMs = now() - start;
  const [m, i, f] = [own(r.masks), own(r.iou), r.full ? own(r.full) : null];
  const [index, waitMs] = [pickIndex(i, multimask), start - msg.receivedAt];
  const out = { type: "decoded", id: msg.id, key: msg.key, masks: m, iou: i, full: f, index, decodeMs, waitMs };
  const transfer = f ? [m.buffer, i.buffer, f.buffer] : [m.buffer, i.buffer];
  reply({ ...out, unsnapped: r.unsnapped, graph: r.graph || "decode" }, transfer);
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
        if (!sessions) throw new Error("decoder not initialised");
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
