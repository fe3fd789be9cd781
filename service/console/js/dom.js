// Small DOM building blocks shared by the pages: element creation, field errors, number and time formats.

/** `el("td", {class: "num"}, "0.5")`: an element with attributes (on* as listeners) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

/** Show `message` in the error line of a form control (`<id>-error`), mark the control invalid, and focus it. */
export function fieldError(control, message) {
  const line = byId(`${control.id}-error`);
  control.setAttribute("aria-invalid", "true");
  if (line) {
    line.textContent = message;
    line.hidden = false;
  }
  control.focus();
}

/** Clear every error of a form (or any container): lines hidden, controls valid again. */
export function clearErrors(container) {
  for (const node of container.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  for (const line of container.querySelectorAll(".error")) {
    line.textContent = "";
    line.hidden = true;
  }
}

/** Show an error in a form-level line (`lineId`), for errors no single field owns. */
export function formError(lineId, message) {
  const line = byId(lineId);
  line.textContent = message;
  line.hidden = false;
}

/**
 * Put an API error beside the control it concerns: the error's `field` ("examples.2" → name="examples"), else
 * `fallback` (a control or a form-level line id). Returns nothing; the form keeps everything typed.
 */
export function showApiError(form, error, fallback) {
  const message = plainWords(error);
  const name = error.field ? String(error.field).split(".")[0] : null;
  const control = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
  if (control) fieldError(control, message);
  else if (typeof fallback === "string") formError(fallback, message);
  else fieldError(fallback, message);
}

/** The API's own detail, with a short lead for the statuses an operator acts on differently. */
export function plainWords(error) {
  const lead = {
    0: "No answer from the server",
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    429: "Too many requests",
    503: "The service is not ready",
  }[error.status];
  const detail = error.detail ? error.detail.charAt(0).toUpperCase() + error.detail.slice(1) : "";
  return lead ? `${lead}: ${detail}` : detail || `Request failed (${error.status})`;
}

/** Lines of a textarea, trimmed, blank ones dropped. */
export function lines(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
}

export function score(value) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(3);
}

export function percent(value) {
  return value === null || value === undefined ? "—" : `${(100 * value).toFixed(1)} %`;
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A horizontal bar: `value` in [0, 1], an optional threshold marker; labelled for screen readers. */
export function bar(value, { threshold = null, hit = false, kind = "", label = "" } = {}) {
  const width = Math.max(0, Math.min(1, Number(value) || 0)) * 100;
  const node = el("div", { class: `bar ${hit ? "hit" : ""} ${kind}`.trim(), role: "img", "aria-label": label });
  node.append(el("span", { style: `width: ${width.toFixed(1)}%` }));
  if (threshold !== null && threshold !== undefined) {
    const left = Math.max(0, Math.min(1, threshold)) * 100;
    node.append(el("i", { class: "threshold", style: `left: calc(${left.toFixed(1)}% - 1px)`, title: "threshold" }));
  }
  return node;
}

/** Disable a button while `work` runs, so a double click sends nothing twice. */
export async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

/** Ask with the page's own dialog (keyboard and screen-reader friendly); resolves true on the OK button. */
export function confirmDialog(text, okLabel = "Delete") {
  const dialog = byId("confirm-dialog");
  byId("confirm-text").textContent = text;
  byId("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
