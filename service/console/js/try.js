// Try a prompt: one text with its full verdict, or several lines as a table of verdicts.

import { api } from "./api.js";
import { busy, byId, clearErrors, el, fieldError, lines, score, showApiError } from "./dom.js";
import { verdictBadge, verdictView } from "./verdict.js";

export function init() {
  byId("try-form").addEventListener("submit", classifyOne);
  byId("batch-form").addEventListener("submit", classifyMany);
}

export async function show() {}

async function classifyOne(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const input = byId("try-text");
  clearErrors(form);
  const text = input.value;
  if (!text.trim()) {
    fieldError(input, "Type a prompt to classify.");
    return;
  }
  const out = byId("try-result");
  await busy(form.querySelector("button"), async () => {
    try {
      const verdict = await api("POST", "/v1/classify", { text });
      out.replaceChildren(verdictView(verdict));
    } catch (error) {
      out.replaceChildren();
      showApiError(form, error, input);
    }
  });
}

async function classifyMany(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const input = byId("batch-texts");
  clearErrors(form);
  const texts = lines(input.value);
  if (!texts.length) {
    fieldError(input, "Paste one prompt per line.");
    return;
  }
  const out = byId("batch-result");
  await busy(form.querySelector("button"), async () => {
    try {
      const answer = await api("POST", "/v1/classify", { texts });
      out.replaceChildren(batchTable(texts, answer.results));
    } catch (error) {
      out.replaceChildren();
      // "texts.3" names the line (0-based) the API refused
      const at = error.field && /^texts\.(\d+)/.exec(error.field);
      if (at) error.detail = `line ${Number(at[1]) + 1}: ${error.detail}`;
      showApiError(form, error, input);
    }
  });
}

function batchTable(texts, results) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { "data-testid": "batch-table" },
      el("caption", { class: "sr-only" }, "Verdicts, one row per line"),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col", class: "num" }, "#"),
          el("th", { scope: "col" }, "Prompt"),
          el("th", { scope: "col" }, "Verdict"),
          el("th", { scope: "col" }, "Category"),
          el("th", { scope: "col", class: "num" }, "Score"),
          el("th", { scope: "col", class: "num" }, "Threshold"),
        ),
      ),
      el(
        "tbody",
        {},
        results.map((v, i) =>
          el(
            "tr",
            {},
            el("td", { class: "num" }, i + 1),
            el("td", { class: "text" }, texts[i]),
            el("td", {}, verdictBadge(v)),
            el("td", {}, v.category || "—"),
            el("td", { class: "num" }, score(v.score)),
            el("td", { class: "num" }, score(v.threshold)),
          ),
        ),
      ),
    ),
  );
}
