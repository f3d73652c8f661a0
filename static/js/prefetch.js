// Prefetching the next image while the annotator works on this one (issue 6), so that "next"
// opens it with no network wait. GET /next?exclude=<open image> reserves it: the server leases
// it to this annotator now (an annotator holds at most two images, the open one and the one
// reserved to come next; see annotator_backend/assignment.py). Its pixels are then decoded and
// its embedding loaded into the decoder worker in the background. "Next" still asks the server
// which image comes next and uses what was prefetched only when it is that image.
// A page setting: on by default, off with the sidebar switch (kept in localStorage) or ?prefetch=0.

import { mark } from "./status.js";

const SETTING_KEY = "sam-annotator-prefetch";

export class Prefetcher {
  /** deps: {navigator, decoder, loadPixels(url) -> Promise<img>, enabled} */
  constructor({ navigator, decoder, loadPixels, enabled }) {
    this.navigator = navigator;
    this.decoder = decoder;
    this.loadPixels = loadPixels;
    this.enabled = enabled;
    this.entry = null; // {after, payload, pixels, done}
  }

  /** The setting: the URL's ?prefetch= wins, then the stored choice, else on. */
  static setting(params) {
    const fromUrl = params.get("prefetch");
    if (fromUrl !== null) return fromUrl !== "0";
    return localStorage.getItem(SETTING_KEY) !== "off";
  }

  /** Wire the sidebar checkbox to the setting. */
  bindSwitch(box) {
    box.checked = this.enabled;
    box.addEventListener("change", () => {
      this.enabled = box.checked;
      localStorage.setItem(SETTING_KEY, box.checked ? "on" : "off");
      mark("prefetch", this.enabled);
    });
    mark("prefetch", this.enabled);
  }

  /** Start fetching the image that comes after the open image `afterId` (when enabled). */
  start(afterId) {
    if (!this.enabled || afterId === null || afterId === undefined) return;
    if (this.entry && this.entry.after === afterId) return;
    const entry = { after: afterId, payload: null, pixels: null, done: null };
    this.entry = entry;
    mark("prefetchedId", "");
    mark("prefetchError", "");
    entry.done = (async () => {
      const next = await this.navigator.next(afterId);
      if (!next || this.entry !== entry) return null;
      entry.payload = next;
      entry.pixels = this.loadPixels(next.image.url);
      const key = this.decoder.embeddingKey(next.image.id, next.model.id);
      await Promise.all([entry.pixels, this.decoder.loadEmbedding(key, next.embedding_url, entry.pixels)]);
      return next;
    })();
    entry.done.then(
      (next) => this.entry === entry && mark("prefetchedId", next ? next.image.id : "none"),
      (err) => {
        if (this.entry === entry) this.entry = null;
        console.warn("prefetch failed:", err);
        mark("prefetchError", String(err?.message || err));
      },
    );
  }

  /** Whether `next` (a GET /next answer) is the prefetched image. */
  has(next) {
    const p = this.entry && this.entry.payload;
    return !!p && p.image.id === next.image.id && p.model.id === next.model.id;
  }

  /** The image's pixels: the prefetched ones when they are that image's, else loaded now. */
  pixels(url) {
    const e = this.entry;
    if (e && e.payload && e.payload.image.url === url && e.pixels) {
      return e.pixels.catch(() => this.loadPixels(url));
    }
    return this.loadPixels(url);
  }
}
