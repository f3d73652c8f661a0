// The status line (decoder backend, decode ms, pending events, connection) and the help
// overlay. Everything is written with textContent. The same figures are mirrored on
// document.body.dataset for tests and benchmarks (decoderReady, lastDecodeMs, ...).

import { SHORTCUTS } from "./shortcuts.js";

export class StatusLine {
  constructor(el) {
    this.el = el;
    this.fields = {
      decoder: "decoder loading…",
      decode: "",
      events: "",
      socket: "connecting…",
      message: "",
    };
  }

  set(name, text) {
    this.fields[name] = text;
    this.render();
  }

  message(text, isError = false) {
    this.fields.message = text;
    this.el.classList.toggle("error", isError);
    this.render();
  }

  render() {
    const parts = Object.values(this.fields).filter(Boolean);
    this.el.textContent = parts.join(" · ");
  }
}

/** Mirror values on body data attributes (strings): mark(name, value, name2, value2, ...). */
export function mark(...pairs) {
  for (let i = 0; i + 1 < pairs.length; i += 2) document.body.dataset[pairs[i]] = String(pairs[i + 1]);
}

/** Fill the help overlay's table from the shortcut table and wire its toggle. */
export function setupHelp(overlay, tableBody, closeButton) {
  tableBody.replaceChildren(
    ...SHORTCUTS.map((s) => {
      const tr = document.createElement("tr");
      const k = document.createElement("td");
      const kbd = document.createElement("kbd");
      kbd.textContent = s.keys;
      k.append(kbd);
      const a = document.createElement("td");
      a.textContent = s.action;
      tr.append(k, a);
      return tr;
    }),
  );
  const toggle = (show = overlay.hidden) => {
    overlay.hidden = !show;
  };
  closeButton.addEventListener("click", () => toggle(false));
  overlay.addEventListener("click", (ev) => {
    if (ev.target === overlay) toggle(false);
  });
  return { toggle, isOpen: () => !overlay.hidden };
}
