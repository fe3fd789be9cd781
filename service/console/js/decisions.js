// Decisions: the recent decision log with filters and paging, counts per category, export of the filtered range.

import { api, download, query } from "./api.js";
import { bar, busy, byId, clearErrors, el, fieldError, score, showApiError, when } from "./dom.js";
import { verdictBadge } from "./verdict.js";

const PAGE_SIZE = 50;
let filters = {};
let nextBefore = null;

export function init() {
  byId("decisions-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    const read = readFilters();
    if (!read) return;
    filters = read;
    loadPage(null);
  });
  byId("decisions-older").addEventListener("click", () => nextBefore !== null && loadPage(nextBefore));
  byId("decisions-newest").addEventListener("click", () => loadPage(null));
  byId("export-jsonl").addEventListener("click", (event) => exportRange("jsonl", event.currentTarget));
  byId("export-csv").addEventListener("click", (event) => exportRange("csv", event.currentTarget));
}

export async function show() {
  await Promise.all([loadCounts(), loadPage(null), loadCategoryNames()]);
}

/** The filter form as query parameters, or null after showing what is wrong beside the field. */
function readFilters() {
  const form = byId("decisions-filter");
  clearErrors(form);
  const out = {
    category: byId("filter-category").value.trim(),
    flagged: byId("filter-flagged").value,
  };
  for (const name of ["since", "until"]) {
    const input = byId(`filter-${name}`);
    if (!input.value) continue;
    const date = new Date(input.value); // datetime-local is local time; the API takes an offset
    if (Number.isNaN(date.getTime())) {
      fieldError(input, "Pick a date and time, or leave it empty.");
      return null;
    }
    out[name] = date.toISOString();
  }
  if (out.since && out.until && out.since >= out.until) {
    fieldError(byId("filter-until"), "“To” must be after “From”.");
    return null;
  }
  return out;
}

async function loadPage(before) {
  const body = byId("decisions-table").tBodies[0];
  try {
    const page = await api("GET", `/v1/decisions${query({ ...filters, limit: PAGE_SIZE, before_id: before })}`);
    nextBefore = page.next_before_id;
    byId("decisions-older").disabled = nextBefore === null;
    byId("decisions-newest").disabled = before === null;
    byId("decisions-note").textContent =
      (page.decisions.length ? `${page.decisions.length} decisions, newest first. ` : "No decisions match. ") +
      (page.text_logged ? "" : "Raw texts are not stored on this deployment (LIGHTGUARD_LOG_TEXT=false): digests only.");
    body.replaceChildren(...page.decisions.map(decisionRow));
  } catch (error) {
    showApiError(byId("decisions-filter"), error, "decisions-filter-error");
  }
}

function decisionRow(d) {
  return el(
    "tr",
    {},
    el("td", {}, when(d.created_at)),
    el("td", {}, verdictBadge(d)),
    el("td", {}, d.category || "—"),
    el("td", { class: "num" }, score(d.score)),
    el("td", {}, d.endpoint),
    el("td", { class: "text" }, d.text === null ? el("code", { title: "digest of the text (the raw text is not stored)" }, d.text_digest) : d.text),
  );
}

async function loadCategoryNames() {
  try {
    const { topics } = await api("GET", "/v1/topics");
    byId("category-names").replaceChildren(...topics.filter((t) => t.kind !== "safe").map((t) => el("option", { value: t.name })));
  } catch {
    // suggestions only
  }
}

async function loadCounts() {
  const chart = byId("counts-chart");
  try {
    const counts = await api("GET", "/v1/decisions/counts");
    chart.replaceChildren(countsChart(counts));
  } catch (error) {
    chart.replaceChildren(el("p", { class: "error" }, error.detail));
  }
}

function countsChart(counts) {
  const hour = counts.windows.find((w) => w.window === "hour");
  const day = counts.windows.find((w) => w.window === "day");
  const names = Object.keys(day.categories).sort((a, b) => day.categories[b] - day.categories[a]);
  const most = Math.max(1, ...names.map((n) => day.categories[n]));
  const label = (n) => n;
  const rows = names.flatMap((n) => [
    el("span", { class: "name" }, label(n)),
    el(
      "div",
      {},
      bar(day.categories[n] / most, { kind: "day", label: `${label(n)}: ${day.categories[n]} in the last day` }),
      bar((hour.categories[n] || 0) / most, { kind: "hour", label: `${label(n)}: ${hour.categories[n] || 0} in the last hour` }),
    ),
    el("span", { class: "value" }, `${hour.categories[n] || 0} / ${day.categories[n]}`),
  ]);
  return el(
    "div",
    { "data-testid": "counts" },
    el(
      "p",
      {},
      `Last hour: ${hour.total} decisions, ${hour.flagged} flagged. Last day: ${day.total}, ${day.flagged} flagged.`,
    ),
    el(
      "div",
      { class: "legend", "aria-hidden": "true" },
      el("span", {}, el("span", { class: "swatch", style: "background: var(--accent)" }), " last hour"),
      el("span", {}, el("span", { class: "swatch", style: "background: #9fb3d1" }), " last day"),
    ),
    names.length ? el("div", { class: "bars" }, rows) : el("p", { class: "muted" }, "Nothing flagged in the last day."),
  );
}

async function exportRange(format, button) {
  const read = readFilters();
  if (!read) return;
  await busy(button, async () => {
    try {
      const { blob, filename } = await download(`/v1/decisions/export${query({ ...read, format })}`);
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: filename });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      showApiError(byId("decisions-filter"), error, "decisions-filter-error");
    }
  });
}
