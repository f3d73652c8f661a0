// Entry point of the annotate page: reads the page data, starts the decoder worker, the
// socket and the outbox, fetches the next image and wires input, categories and help.
// Page URL options (for benchmarks): ?backend=wasm|webgpu|auto, ?threads=N.

import { Annotator } from "./controller.js";
import { DecoderClient } from "./decoder_client.js";
import { bindInput } from "./input.js";
import { Outbox } from "./outbox.js";
import { StageRenderer } from "./render.js";
import { EventSocket } from "./socket.js";
import { StatusLine, mark, setupHelp } from "./status.js";

const $ = (id) => document.getElementById(id);
const page = JSON.parse($("page-data").textContent);
const params = new URLSearchParams(location.search);
const status = new StatusLine($("status-line"));

function loadPixels(url) {
  const img = new Image();
  img.decoding = "async";
  img.src = url;
  return img.decode().then(() => img);
}

async function fetchNext() {
  const resp = await fetch(`/api/projects/${page.project.id}/next`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (resp.status === 404) return null;
  if (!resp.ok) throw new Error(`GET next image: HTTP ${resp.status}`);
  return resp.json();
}

function buildCategoryPicker(annotator) {
  const list = $("category-list");
  const inputs = page.categories.map((c, i) => {
    const label = document.createElement("label");
    label.className = "category";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "category";
    input.value = String(c.id);
    input.checked = i === 0;
    input.addEventListener("change", () => annotator.selectCategory(i));
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = /^#[0-9a-f]{6}$/i.test(c.color || "") ? c.color : "#1f77b4";
    const key = document.createElement("kbd");
    key.textContent = i < 9 ? String(i + 1) : "";
    const name = document.createElement("span");
    name.textContent = c.name;
    label.append(input, swatch, key, name);
    list.append(label);
    return input;
  });
  annotator.onCategory = (i) => {
    inputs[i].checked = true;
    mark("category", page.categories[i].id);
  };
  if (!page.categories.length) status.message("This project has no categories", true);
}

function showModel(model) {
  $("model-name").textContent = model ? model.name : "none";
  $("untrained-banner").hidden = !model || model.trained !== false;
}

const decoderOptions = () => ({
  backend: params.get("backend") || "auto",
  numThreads: Number(params.get("threads")) || 0,
});

function startDecoder(decoder, url) {
  const done = decoder.init(url, decoderOptions());
  done.catch(() => {}); // reported by decoderFor when it matters
  return { url, done };
}

/** The decoder for `url`: the early start when it loaded that URL, else a new init. */
async function decoderFor(decoder, early, url) {
  if (early) {
    const info = await early.done.catch(() => null);
    if (info && early.url === url) return info;
  }
  return decoder.init(url, decoderOptions());
}

async function main() {
  mark("decoderReady", "false");
  const decoder = new DecoderClient();
  // When the page already knows the decoder's URL, load onnxruntime and the model while the
  // next image is being picked.
  const early = page.model && page.model.decoder_url ? startDecoder(decoder, page.model.decoder_url) : null;
  const renderer = new StageRenderer($("stage"), {
    image: $("image-canvas"),
    accepted: $("accepted-canvas"),
    current: $("current-canvas"),
    prompts: $("prompt-canvas"),
  });
  let outbox = null;
  const socket = new EventSocket({
    onConnect: () => outbox && outbox.flush(),
    onStatus: (s) => status.set("socket", s),
  });
  outbox = await Outbox.open(socket, page.user_id, (box) => {
    const rejected = box.rejected.length ? `, ${box.rejected.length} rejected` : "";
    status.set("events", `${box.pending} events pending${rejected}`);
    mark("pendingEvents", box.pending);
    mark("ackedEvents", box.acked);
  });
  outbox.flush();

  const annotator = new Annotator({ decoder, renderer, outbox, status, categories: page.categories });
  buildCategoryPicker(annotator);
  const help = setupHelp($("help-overlay"), $("help-rows"), $("help-close"));
  $("help-button").addEventListener("click", () => help.toggle());
  bindInput(
    $("prompt-canvas"),
    () => annotator.size,
    {
      point: (x, y, label, t0) => annotator.point(x, y, label, t0),
      accept: () => annotator.accept(),
      clear: () => annotator.clear(),
      undo: () => annotator.undo(),
      redo: () => annotator.redo(),
      category: (i) => annotator.selectCategory(i),
      cycle: () => annotator.cycle(),
      help: () => help.toggle(),
    },
    help.isOpen,
  );
  window.addEventListener("resize", () => {
    renderer.layout();
    renderer.drawAccepted(annotator.accepted);
    annotator.redraw();
  });

  const next = await fetchNext();
  mark("nextMs", performance.now().toFixed(1));
  if (!next) {
    $("empty-message").hidden = false;
    status.set("decoder", "no image");
    return;
  }
  showModel(next.model);
  $("image-name").textContent = next.image.name || `image ${next.image.id}`;
  const ready = decoderFor(decoder, early, next.model.decoder_url);
  await Promise.all([ready, annotator.open(next, loadPixels)]);
  const info = decoder.info;
  status.set("decoder", `decoder ${info.backend} × ${info.numThreads} thread${info.numThreads > 1 ? "s" : ""}`);
  mark("decoderBackend", info.backend);
  mark("decoderThreads", info.numThreads);
  mark("decoderLoadMs", info.loadMs.toFixed(1));
  mark("imageId", next.image.id);
  mark("readyMs", performance.now().toFixed(1)); // since navigation start
  mark("decoderReady", "true");
}

main().catch((err) => {
  console.error(err);
  status.message(`Error: ${err.message || err}`, true);
  mark("decoderError", err.message || String(err));
});
