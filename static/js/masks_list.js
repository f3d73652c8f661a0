// The list of the image's accepted masks: colour (its category's), id, category (a select that
// changes it), state (saved / saving / editing / hidden) and the buttons Edit (reopen it in
// the draft), Hide/Show and Delete. Rebuilt only when something it shows changed.

export class MaskList {
  /** el: a <ul>; handlers: {edit(m), toggle(m), remove(m), category(m, categoryId)}. */
  constructor(el, categories, handlers) {
    this.el = el;
    this.categories = categories;
    this.h = handlers;
    this.sig = "";
  }

  render(masks) {
    const sig = masks
      .map((m) => [m.key, m.id, m.category_id, m.hidden, m.editing, m.pending].join(":"))
      .join("|");
    if (sig === this.sig) return;
    this.sig = sig;
    this.el.replaceChildren(...masks.map((m, i) => this.row(m, i)));
    if (!masks.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No masks yet";
      this.el.append(li);
    }
  }

  row(m, i) {
    const li = document.createElement("li");
    li.className = "mask-row";
    li.setAttribute("data-testid", "mask-row");
    li.dataset.key = m.key;
    if (m.id) li.dataset.maskId = String(m.id);
    li.classList.toggle("editing", m.editing);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = /^#[0-9a-f]{6}$/i.test(m.color || "") ? m.color : "#1f77b4";
    const name = document.createElement("span");
    name.className = "mask-name";
    name.textContent = `${i + 1}. ${m.id ? `#${m.id}` : "new"}`;
    const select = document.createElement("select");
    select.className = "mask-category";
    select.setAttribute("aria-label", "Category");
    for (const c of this.categories) {
      const opt = document.createElement("option");
      opt.value = String(c.id);
      opt.textContent = c.name;
      opt.selected = c.id === m.category_id;
      select.append(opt);
    }
    select.addEventListener("change", () => this.h.category(m, Number(select.value)));
    const state = document.createElement("span");
    state.className = "mask-state";
    const parts = [m.editing ? "editing" : m.pending ? "saving…" : "saved"];
    if (m.hidden) parts.push("hidden");
    state.textContent = parts.join(", ");
    const button = (label, fn, cls) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = cls;
      b.textContent = label;
      b.addEventListener("click", () => fn(m));
      return b;
    };
    li.append(
      swatch,
      name,
      select,
      state,
      button("Edit", this.h.edit, "mask-edit"),
      button(m.hidden ? "Show" : "Hide", this.h.toggle, "mask-toggle"),
      button("Delete", this.h.remove, "mask-delete"),
    );
    return li;
  }
}
