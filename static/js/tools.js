// The tool bar: point/box, brush, eraser, the brush radius (image pixels) and the hover
// preview switch. The annotator reads the radius from here; input.js asks for the tool.

const TOOLS = ["point", "brush", "eraser"];
export const MIN_RADIUS = 1;
export const MAX_RADIUS = 200;

export class Tools {
  /** el: container with buttons [data-tool], input#radius, output#radius-value, input#preview. */
  constructor(el, annotator, onChange = () => {}) {
    this.el = el;
    this.annotator = annotator;
    this.onChange = onChange;
    this.current = "point";
    this.buttons = [...el.querySelectorAll("[data-tool]")];
    for (const b of this.buttons) b.addEventListener("click", () => this.set(b.dataset.tool));
    this.range = el.querySelector("#radius");
    this.value = el.querySelector("#radius-value");
    this.range.addEventListener("input", () => this.setRadius(Number(this.range.value)));
    this.previewBox = el.querySelector("#preview");
    this.previewBox.addEventListener("change", () => this.setPreview(this.previewBox.checked));
    this.setRadius(annotator.radius);
    this.set("point");
  }

  set(tool) {
    if (!TOOLS.includes(tool)) return;
    this.current = tool;
    for (const b of this.buttons) b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
    document.body.dataset.tool = tool;
    if (tool !== "point") this.annotator.hover(null, null);
    this.annotator.setOverlay({ cursor: null });
    this.onChange(tool);
  }

  setRadius(r) {
    const v = Math.min(MAX_RADIUS, Math.max(MIN_RADIUS, Math.round(r)));
    this.annotator.radius = v;
    this.range.value = String(v);
    this.value.textContent = `${v} px`;
    document.body.dataset.radius = String(v);
  }

  /** [ and ]: about 20% smaller or larger, at least one pixel. */
  step(dir) {
    const r = this.annotator.radius;
    this.setRadius(dir > 0 ? Math.max(r + 1, r * 1.25) : Math.min(r - 1, r / 1.25));
  }

  setPreview(on) {
    this.annotator.preview = on;
    this.previewBox.checked = on;
    if (!on) this.annotator.hover(null, null);
  }

  togglePreview() {
    this.setPreview(!this.annotator.preview);
  }
}
