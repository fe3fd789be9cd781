// A custom topic measured on the operator's labelled texts (POST /v1/topics/{id}/evaluate), and the suggested
// threshold applied with one click (PATCH /v1/topics/{id}).

import { api } from "./api.js";
import { busy, byId, clearErrors, el, fieldError, percent, score, showApiError } from "./dom.js";
import { parseLabelled } from "./labelled.js";

/** The evaluate form of a custom topic; `applied(topic)` runs after its suggested threshold is set. */
export function evaluateForm(topic, applied) {
  const out = el("div", { id: "evaluate-result", "aria-live": "polite" });
  const form = el(
    "form",
    { id: "evaluate-form", novalidate: true, "aria-label": "Evaluate" },
    el("h3", {}, "Evaluate on your labelled texts"),
    el(
      "div",
      { class: "field" },
      el("label", { for: "evaluate-sample" }, "Labelled sample"),
      el("textarea", { id: "evaluate-sample", name: "examples", rows: 6, "aria-describedby": "evaluate-sample-hint evaluate-sample-error" }),
      el(
        "p",
        { class: "hint", id: "evaluate-sample-hint" },
        "One per line: 1 (belongs to the topic) or 0, a tab or space, then the text; or JSON lines {\"text\": …, \"match\": true}.",
      ),
      el("p", { class: "error", id: "evaluate-sample-error", role: "alert", hidden: true }),
    ),
    el(
      "div",
      { class: "field" },
      el("label", { for: "evaluate-file" }, "…or load a file (.jsonl, .tsv, .txt)"),
      el("input", { id: "evaluate-file", type: "file", accept: ".jsonl,.json,.tsv,.txt,.csv" }),
    ),
    el(
      "div",
      { class: "field" },
      el("label", { for: "evaluate-fmr" }, "Target false-match rate"),
      el("input", { id: "evaluate-fmr", name: "target_fmr", inputmode: "decimal", value: "0.01", "aria-describedby": "evaluate-fmr-error" }),
      el("p", { class: "error", id: "evaluate-fmr-error", role: "alert", hidden: true }),
    ),
    el("p", { class: "error", id: "evaluate-form-error", role: "alert", hidden: true }),
    el("button", { type: "submit", class: "secondary" }, "Evaluate"),
    out,
  );
  form.querySelector("#evaluate-file").addEventListener("change", async (event) => {
    const file = event.currentTarget.files[0];
    if (file) byId("evaluate-sample").value = await file.text(); // shown and editable before it is sent
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const parsed = parseLabelled(byId("evaluate-sample").value, topic.name);
    if (parsed.error) return fieldError(byId("evaluate-sample"), parsed.error);
    const fmr = Number(byId("evaluate-fmr").value.trim());
    if (!(fmr > 0 && fmr < 1)) return fieldError(byId("evaluate-fmr"), "A false-match rate is a number between 0 and 1, e.g. 0.01.");
    await busy(form.querySelector("button[type=submit]"), async () => {
      try {
        const report = await api("POST", `/v1/topics/${topic.id}/evaluate`, { examples: parsed.examples, target_fmr: fmr });
        out.replaceChildren(evaluationView(topic, report, parsed.examples, applied));
      } catch (error) {
        if (error.field && /^examples\.(\d+)/.test(error.field)) {
          error.detail = `line ${parsed.lines[Number(error.field.split(".")[1])]}: ${error.detail}`;
        }
        showApiError(form, error, byId("evaluate-sample"));
      }
    });
  });
  return form;
}

function evaluationView(topic, report, examples, applied) {
  const row = (name, m) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, name),
      el("td", { class: "num" }, score(m.threshold)),
      el("td", { class: "num" }, percent(m.precision)),
      el("td", { class: "num" }, percent(m.recall)),
      el("td", { class: "num" }, percent(m.false_match_rate)),
    );
  const suggested = report.suggested.target_fmr.threshold;
  const apply = el("button", { type: "button", id: "apply-threshold" }, `Apply suggested threshold ${score(suggested)}`);
  const status = el("span", { role: "status" });
  apply.addEventListener("click", () =>
    busy(apply, async () => {
      try {
        const updated = await api("PATCH", `/v1/topics/${topic.id}`, { threshold: suggested });
        await applied(updated);
      } catch (error) {
        status.textContent = error.detail;
        status.className = "error";
      }
    }),
  );
  return el(
    "div",
    { "data-testid": "evaluation" },
    el("p", {}, `${report.items} texts: ${report.positives} that belong to the topic, ${report.negatives} that do not.`),
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "compact" },
        el("caption", { class: "sr-only" }, "Evaluation"),
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            el("th", { scope: "col" }, "Threshold"),
            el("th", { scope: "col", class: "num" }, "Value"),
            el("th", { scope: "col", class: "num" }, "Precision"),
            el("th", { scope: "col", class: "num" }, "Recall"),
            el("th", { scope: "col", class: "num" }, "False matches"),
          ),
        ),
        el(
          "tbody",
          {},
          row("current", report.current),
          row(`suggested: ≤ ${percent(report.target_fmr)} false matches`, report.suggested.target_fmr),
          row("best F1", report.suggested.best_f1),
        ),
      ),
    ),
    sampleWarning(report),
    lowerWarning(report),
    el("div", { class: "actions" }, apply, status),
    itemScores(report, examples),
  );
}

/** A false-match rate measured on few negatives moves in coarse steps: say so beside the suggestion. */
function sampleWarning(report) {
  const needed = Math.ceil(1 / report.target_fmr);
  if (report.negatives >= needed) return null;
  return el(
    "p",
    { class: "banner warn" },
    `With ${report.negatives} texts that do not belong, the false-match rate moves in steps of ` +
      `${percent(1 / Math.max(1, report.negatives))}: a ${percent(report.target_fmr)} target needs ${needed} or more ` +
      "of them before its suggested threshold means much (docs/topics.md).",
  );
}

/** A suggestion below the current threshold that finds nothing more on these texts only lets more through. */
function lowerWarning(report) {
  const current = report.current;
  const suggested = report.suggested.target_fmr;
  if (!(suggested.threshold < current.threshold && suggested.recall <= current.recall)) return null;
  return el(
    "p",
    { class: "banner warn" },
    `The suggested threshold ${score(suggested.threshold)} is below the current ${score(current.threshold)} yet ` +
      "finds no more of these texts: every text it lets through beyond the current one would be a new match no " +
      "labelled text asked for. Keep the current threshold unless the sample says otherwise.",
  );
}

function itemScores(report, examples) {
  const threshold = report.current.threshold;
  return el(
    "details",
    {},
    el("summary", {}, "Score of each text"),
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "compact" },
        el("caption", { class: "sr-only" }, "Topic score of each labelled text"),
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            el("th", { scope: "col" }, "Text"),
            el("th", { scope: "col" }, "Belongs"),
            el("th", { scope: "col", class: "num" }, "Score"),
            el("th", { scope: "col" }, "Matches now"),
          ),
        ),
        el(
          "tbody",
          {},
          examples.map((e, i) =>
            el(
              "tr",
              {},
              el("td", { class: "text" }, e.text),
              el("td", {}, e.match ? "yes" : "no"),
              el("td", { class: "num" }, score(report.scores[i])),
              el("td", {}, report.scores[i] >= threshold ? "yes" : "no"),
            ),
          ),
        ),
      ),
    ),
  );
}
