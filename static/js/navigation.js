// Moving between images: GET next (the image this annotator holds, else the next open one;
// ?exclude=ID: the one after image ID, for prefetching),
// GET open (an image by id: "previous"), POST finish (next: the image is done) and POST skip
// (with a reason: it leaves the queue). The images opened in this tab are kept in
// sessionStorage for "previous". JSON POSTs carry the CSRF token of the page.

const BACK_KEY = "sam-annotator-back";

export class Navigator {
  constructor(projectId) {
    this.projectId = projectId;
    const meta = document.querySelector('meta[name="csrf-token"]');
    this.csrf = meta ? meta.content : "";
  }

  async getJson(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (resp.status === 404) return null;
    if (!resp.ok) throw new Error(`GET ${url}: HTTP ${resp.status}`);
    return resp.json();
  }

  /** The image to open; with `exclude` (prefetch), the one reserved to come after it. */
  next(exclude = null) {
    const query = exclude === null ? "" : `?exclude=${encodeURIComponent(exclude)}`;
    return this.getJson(`/api/projects/${this.projectId}/next${query}`);
  }

  open(imageId) {
    return this.getJson(`/api/images/${imageId}/open`);
  }

  async post(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": this.csrf },
      body: JSON.stringify(body),
    });
    let data = {};
    try {
      data = await resp.json();
    } catch {
      data = {};
    }
    return { ok: resp.ok && data.ok !== false, status: resp.status, error: data.error || `HTTP ${resp.status}` };
  }

  finish(imageId) {
    return this.post(`/api/images/${imageId}/finish`, {});
  }

  skip(imageId, reason) {
    return this.post(`/api/images/${imageId}/skip`, { reason });
  }

  back() {
    try {
      return JSON.parse(sessionStorage.getItem(BACK_KEY) || "[]");
    } catch {
      return [];
    }
  }

  /** Remember that `imageId` was left for another image. */
  push(imageId) {
    const list = this.back().filter((id) => id !== imageId);
    list.push(imageId);
    sessionStorage.setItem(BACK_KEY, JSON.stringify(list.slice(-50)));
  }

  /** The image opened before the current one, removed from the list; null when none. */
  pop(currentId) {
    const list = this.back().filter((id) => id !== currentId);
    const id = list.pop() ?? null;
    sessionStorage.setItem(BACK_KEY, JSON.stringify(list));
    return id;
  }
}
