// Event envelopes of the annotation log: a client UUID, the annotation session (one per page
// load x image) and a per-session sequence number, as the Socket.IO "event" contract wants.

/** UUID v4; crypto.randomUUID needs a secure context, so fall back to getRandomValues. */
export function uuid4() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class AnnotationSession {
  /** One per (page load, image): events of a session share its UUID and count from 0. */
  constructor(imageId, modelVersionId) {
    this.id = uuid4();
    this.imageId = imageId;
    this.modelVersionId = modelVersionId;
    this.seq = 0;
  }

  /** The next event of this session: UUID, session, seq, timestamps, payload. */
  event(type, payload = {}, decoderMs = null) {
    return {
      uuid: uuid4(),
      session: this.id,
      seq: this.seq++,
      type,
      image_id: this.imageId,
      model_version_id: this.modelVersionId,
      client_ts: Date.now(),
      decoder_ms: decoderMs,
      payload,
    };
  }
}

/**
 * Active time of the mask being drawn: the sum of the gaps between consecutive logged events
 * (their client timestamps), from the first prompt, stroke or reopened mask to the accept,
 * leaving out every gap longer than IDLE_GAP_MS (the annotator was away or doing something
 * else). The server sums an image's time with the same rule over all of a session's events
 * (events.session_active_ms).
 */
export const IDLE_GAP_MS = 30000;

export class ActiveTimer {
  constructor() {
    this.reset();
  }

  reset() {
    this.last = null;
    this.activeMs = 0;
  }

  touch(t = Date.now()) {
    if (this.last !== null) {
      const gap = t - this.last;
      if (gap > 0 && gap <= IDLE_GAP_MS) this.activeMs += gap;
    }
    this.last = t;
  }

  get started() {
    return this.last !== null;
  }

  snapshot() {
    return { last: this.last, activeMs: this.activeMs };
  }

  restore(s) {
    this.last = s ? s.last : null;
    this.activeMs = s ? s.activeMs : 0;
  }
}
