// The category picker of the annotate page: one radio button per category with its colour and
// its number key (1 … 9 select too); the annotator's selected category is the one a mask is
// accepted with.

import { mark } from "./status.js";

export function buildCategoryPicker(list, categories, annotator, status) {
  const inputs = categories.map((c, i) => {
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
  annotator.hooks.category = (i) => {
    inputs[i].checked = true;
    mark("category", categories[i].id);
  };
  if (!categories.length) status.message("This project has no categories", true);
}
