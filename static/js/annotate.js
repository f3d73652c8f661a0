// Entry point of the annotate page: reads the page data, starts the decoder worker, the
// socket, the outbox and the draft store, opens the next image and wires input, tools,
// categories, candidates, the mask list, navigation and help.
// Page URL options (for benchmarks): ?backend, ?threads, ?decoder, ?fault (decoder_setup.js),
// ?preview=0 (no hover preview: a click then always starts its own decode), ?prefetch=0|1
// (prefetching the next image; otherwise the sidebar switch's stored choice, on by default).

import { CandidatePicker } from "./candidates.js";
import { buildCategoryPicker } from "./categories.js";
import { Annotator } from "./controller.js";
import { DecoderClient } from "./decoder_client.js";
import { decoderRequest, showDecoder } from "./decoder_setup.js";
import { DraftStore } from "./draft_store.js";
import { clientToImage } from "./geometry.js";
import { wireNavigation } from "./image_flow.js";
import { bindInput } from "./input.js";
import { MaskList } from "./masks_list.js";
import { Navigator } from "./navigation.js";
import { Outbox } from "./outbox.js";
import { Prefetcher } from "./prefetch.js";
import { StageRenderer } from "./render.js";
import { EventSocket } from "./socket.js";
import { StatusLine, mark, setupHelp } from "./status.js";
import { Tools } from "./tools.js";
import { ViewController } from "./view.js";

const $ = (id) => document.getElementById(id);
const page = JSON.parse($("page-data").textContent);
const params = new URLSearchParams(location.search);
const status = new StatusLine($("status-line"));

function showModel(model) {
  $("model-name").textContent = model ? model.name : "none";
  $("untrained-banner").hidden = !model || model.trained !== false;
}

/** Load the decoder for `url` once; later images of the same model reuse it. */
function decoderLoader(decoder) {
  let loaded = null;
  return (url) => {
    if (!loaded || loaded.url !== url) {
      const req = decoderRequest(url, params);
      const done = decoder.init(req.url, req.options);
      done.catch(() => {}); // reported by the caller when it matters
      loaded = { url, done };
    }
    return loaded.done;
  };
}

async function main() {
  mark("decoderReady", "false");
  const decoder = new DecoderClient();
  const loadDecoder = decoderLoader(decoder);
  // When the page already knows the decoder's URL, load onnxruntime and the model while the
  // next image is being picked.
  if (page.model && page.model.decoder_url) loadDecoder(page.model.decoder_url);
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
  window.annotatorDebug = { socket }; // tests drop the connection through this; benches time it
  outbox = await Outbox.open(socket, page.user_id, (box) => {
    const rejected = box.rejected.length ? `, ${box.rejected.length} rejected` : "";
    status.set("events", `${box.pending} events pending${rejected}`);
    mark("pendingEvents", box.pending);
    mark("ackedEvents", box.acked);
    mark("rejectedEvents", box.rejected.length);
  });
  outbox.flush();
  const drafts = await DraftStore.open();

  const annotator = new Annotator({
    decoder, renderer, outbox, drafts, status, categories: page.categories, userId: page.user_id,
  });
  window.annotatorDebug.annotator = annotator;
  const canvas = $("prompt-canvas");
  const view = new ViewController(renderer, canvas, (v) => {
    annotator.redraw(null, { light: true });
    mark("zoom", v.z.toFixed(3));
  });
  buildCategoryPicker($("category-list"), page.categories, annotator, status);
  const tools = new Tools($("tools"), annotator);
  if (params.get("preview") === "0") tools.setPreview(false);
  const picker = new CandidatePicker($("candidates"), (i) => annotator.choose(i));
  const list = new MaskList($("mask-list"), page.categories, {
    edit: (m) => annotator.select(m),
    toggle: (m) => annotator.toggleHidden(m),
    remove: (m) => annotator.deleteMask(m),
    category: (m, cid) => annotator.changeCategory(m, cid),
  });
  annotator.hooks.changed = (d) => {
    picker.show(d.candidates(), renderer.img, renderer.width, renderer.height, annotator.color);
    list.render(annotator.liveMasks());
    mark("draftEntries", annotator.history.draftEntries().length);
    mark("canUndo", annotator.history.canUndo);
    mark("canRedo", annotator.history.canRedo);
    const c = d.candidates();
    mark("chosenCandidate", c ? c.chosen : "");
  };
  const help = setupHelp($("help-overlay"), $("help-rows"), $("help-close"));
  $("help-button").addEventListener("click", () => help.toggle());

  const openImage = async (next, via) => {
    $("stage").hidden = false;
    $("empty-message").hidden = true;
    mark("noImages", "false");
    showModel(next.model);
    $("image-name").textContent = next.image.name || `image ${next.image.id}`;
    const ready = loadDecoder(next.model.decoder_url);
    await Promise.all([ready, annotator.open(next, (url) => prefetcher.pixels(url), via, ready)]);
    mark("imageId", next.image.id);
    mark("openedVia", via);
    return ready;
  };
  const imageNavigator = new Navigator(page.project.id);
  const prefetcher = new Prefetcher({
    navigator: imageNavigator, decoder, loadPixels, enabled: Prefetcher.setting(params),
  });
  prefetcher.bindSwitch($("prefetch"));
  const nav = wireNavigation({ $, annotator, status, openImage, navigator: imageNavigator, prefetcher });

  bindInput(
    canvas,
    {
      size: () => annotator.size,
      toImage: (cx, cy) => {
        const [w, h] = annotator.size;
        return clientToImage(cx, cy, canvas.getBoundingClientRect(), w, h, renderer.view);
      },
      tool: () => tools.current,
      annotator,
      view,
      actions: {
        accept: () => annotator.accept(false),
        acceptOverlap: () => annotator.accept(true),
        clear: () => annotator.clear(),
        undo: () => annotator.undo(),
        redo: () => annotator.redo(),
        category: (i) => annotator.selectCategory(i),
        cycle: () => annotator.cycle(),
        help: () => help.toggle(),
        tool: (t) => tools.set(t),
        radius: (d) => tools.step(d),
        preview: () => tools.togglePreview(),
        zoom: (d) => view.zoomStep(d),
        fit: () => view.fit(),
        deleteMask: () => annotator.deleteEditing(),
        next: () => nav.next(),
        previous: () => nav.previous(),
        skip: () => nav.askSkip(),
      },
    },
    help.isOpen,
  );
  window.addEventListener("resize", () => {
    renderer.layout();
    annotator.redraw();
  });

  const reload = performance.getEntriesByType("navigation")[0]?.type === "reload";
  const info = await nav.first(reload ? "reload" : "next");
  if (!info) return;
  showDecoder(info, $("decoder-backend"), status);
  mark("decoderLoadMs", info.loadMs.toFixed(1));
  mark("readyMs", performance.now().toFixed(1)); // since navigation start
  mark("decoderReady", "true");
}

function loadPixels(url) {
  const img = new Image();
  img.decoding = "async";
  img.src = url;
  return img.decode().then(() => img);
}

main().catch((err) => {
  console.error(err);
  status.message(`Error: ${err.message || err}`, true);
  mark("decoderError", err.message || String(err));
});
