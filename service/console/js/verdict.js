// How a verdict is drawn: the decision, the score against its threshold, every category as a bar, the evidence.

import { bar, el, score } from "./dom.js";

export function verdictBadge(verdict) {
  return verdict.flagged
    ? el("span", { class: "badge bad" }, verdict.action === "flag" ? "Flagged" : "Blocked")
    : el("span", { class: "badge good" }, "Allowed");
}

/** The full view of one classify answer. */
export function verdictView(verdict) {
  const facts = el(
    "div",
    { class: "verdict" },
    el("span", { class: "big" }, verdictBadge(verdict)),
    el("span", {}, "Category: ", el("strong", { "data-testid": "category" }, verdict.category || "none")),
    el(
      "span",
      {},
      "Score ",
      el("strong", {}, score(verdict.score)),
      verdict.threshold === null ? " (below every threshold)" : ` against threshold ${score(verdict.threshold)}`,
    ),
    verdict.language ? el("span", { class: "muted" }, `language ${verdict.language}`) : null,
    ...(verdict.warnings || []).map((w) => el("span", { class: "badge info" }, w.replace("_", " "))),
  );
  const main = el(
    "div",
    { class: "bars" },
    el("span", { class: "name" }, "score"),
    bar(verdict.score, {
      threshold: verdict.threshold,
      hit: verdict.flagged,
      label: `score ${score(verdict.score)}` + (verdict.threshold === null ? "" : `, threshold ${score(verdict.threshold)}`),
    }),
    el("span", { class: "value" }, score(verdict.score)),
  );
  return el(
    "div",
    { class: "card", "data-testid": "verdict" },
    facts,
    main,
    el("h2", {}, "Category scores"),
    categoryBars(verdict),
    el("h2", {}, "Evidence: nearest examples"),
    evidenceTable(verdict.evidence || []),
  );
}

function categoryBars(verdict) {
  const entries = Object.entries(verdict.categories || {}).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return el("p", { class: "muted" }, "No enabled category.");
  const rows = entries.flatMap(([name, value]) => [
    el("span", { class: "name" }, name),
    bar(value, { hit: verdict.flagged && name === verdict.category, label: `${name} ${score(value)}` }),
    el("span", { class: "value" }, score(value)),
  ]);
  return el("div", { class: "bars", "data-testid": "category-bars" }, rows);
}

function evidenceTable(evidence) {
  if (!evidence.length) return el("p", { class: "muted" }, "No evidence returned.");
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { "data-testid": "evidence" },
      el("caption", { class: "sr-only" }, "Nearest exemplars"),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col" }, "Example"),
          el("th", { scope: "col" }, "Label"),
          el("th", { scope: "col" }, "Role"),
          el("th", { scope: "col", class: "num" }, "Similarity"),
        ),
      ),
      el(
        "tbody",
        {},
        evidence.map((e) =>
          el(
            "tr",
            {},
            el("td", { class: "text" }, e.text),
            el("td", {}, e.label),
            el("td", {}, e.role === "allow" ? "allow (must not match)" : e.role),
            el("td", { class: "num" }, score(e.similarity)),
          ),
        ),
      ),
    ),
  );
}
