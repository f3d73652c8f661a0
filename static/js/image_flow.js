// The next / previous / skip flow of the annotate page.
//   Next: the image is finished (POST finish, a "finish" event) and the next open one opens;
//   refused while a mask is being drafted, so nothing is left behind unnoticed.
//   Previous: reopens the image left last in this tab (GET open); its masks can be edited.
//   Skip: asks for a reason, POST skip (the image leaves the queue), a "skip" event, next.
// Once an image is open the one after it is prefetched (prefetch.js). Each switch marks
// switchMs: from the key press to the new image open with its embedding in the decoder.

import { mark } from "./status.js";

/** deps: {$, annotator, status, openImage(next, via), navigator, prefetcher}. */
export function wireNavigation({ $, annotator, status, openImage, navigator, prefetcher }) {
  let busy = false;
  let switches = 0;
  const form = $("skip-form");
  const reason = $("skip-reason");

  const empty = () => {
    $("empty-message").hidden = false;
    $("stage").hidden = true;
    annotator.image = null;
    status.set("decoder", "no image");
    mark("imageId", "");
    mark("noImages", "true");
    return null;
  };

  const draftInTheWay = () => {
    if (annotator.history.draft().isEmpty) return false;
    status.message("Accept (Enter) or clear (Esc) the current mask first", true);
    return true;
  };

  /** Open `next`, then prefetch the image after it; t0: when the switch was asked for. */
  async function show(next, via, t0) {
    const warm = prefetcher.has(next);
    const info = await openImage(next, via);
    mark("switchMs", (performance.now() - t0).toFixed(1));
    mark("switchPrefetched", warm);
    mark("switchCount", ++switches);
    prefetcher.start(next.image.id);
    return info;
  }

  async function load(via, t0 = performance.now()) {
    const next = await navigator.next();
    if (!document.body.dataset.nextMs) mark("nextMs", performance.now().toFixed(1));
    return next ? show(next, via, t0) : empty();
  }

  async function guarded(fn) {
    if (busy) return;
    busy = true;
    try {
      await fn();
    } catch (err) {
      status.message(String(err.message || err), true);
    } finally {
      busy = false;
    }
  }

  const api = {
    first: (via) => load(via),

    next: () =>
      guarded(async () => {
        const t0 = performance.now();
        const image = annotator.image;
        if (!image || draftInTheWay()) return;
        annotator.log("finish", {});
        const res = await navigator.finish(image.id);
        if (!res.ok) return status.message(`Could not finish the image: ${res.error}`, true);
        navigator.push(image.id);
        return load("next", t0);
      }),

    previous: () =>
      guarded(async () => {
        const image = annotator.image;
        if (image && draftInTheWay()) return;
        const id = navigator.pop(image ? image.id : null);
        if (id === null) return status.message("No previous image in this tab");
        const t0 = performance.now();
        const data = await navigator.open(id);
        if (!data) return status.message("That image is no longer available", true);
        return show(data, "previous", t0);
      }),

    askSkip: () => {
      if (!annotator.image) return;
      form.hidden = false;
      reason.focus();
    },
  };

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = reason.value.trim();
    if (!text) return;
    guarded(async () => {
      const t0 = performance.now();
      const image = annotator.image;
      if (!image) return;
      annotator.log("skip", { reason: text });
      const res = await navigator.skip(image.id, text);
      if (!res.ok) return status.message(`Could not skip the image: ${res.error}`, true);
      form.hidden = true;
      reason.value = "";
      navigator.push(image.id);
      return load("next", t0);
    });
  });
  $("skip-cancel").addEventListener("click", () => {
    form.hidden = true;
  });
  $("next-button").addEventListener("click", () => api.next());
  $("prev-button").addEventListener("click", () => api.previous());
  $("skip-button").addEventListener("click", () => api.askSkip());
  return api;
}
