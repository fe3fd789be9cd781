// Topics: the list, create from examples, edit, delete, a paraphrase test, and evaluate on a labelled sample.

import { api } from "./api.js";
import {
  busy,
  byId,
  clearErrors,
  confirmDialog,
  el,
  fieldError,
  lines,
  score,
  showApiError,
  when,
} from "./dom.js";
import { evaluateForm } from "./topics-evaluate.js";
import { verdictBadge } from "./verdict.js";

let selectedId = null;

export function init() {
  byId("topic-create").addEventListener("submit", createTopic);
}

export async function show() {
  await refreshList();
  if (selectedId !== null) await openTopic(selectedId);
}

async function refreshList() {
  const body = byId("topics-table").tBodies[0];
  try {
    const { topics } = await api("GET", "/v1/topics");
    body.replaceChildren(...topics.map(topicRow));
  } catch (error) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "error" }, error.detail)));
  }
}

function topicRow(t) {
  return el(
    "tr",
    { class: t.id === selectedId ? "selected" : "", "data-topic": t.name },
    el(
      "td",
      {},
      el("button", { type: "button", class: "link-like", onclick: () => openTopic(t.id), "aria-label": `Open ${t.name}` }, t.name),
    ),
    el("td", {}, t.kind),
    el("td", {}, t.action),
    el("td", {}, t.enabled ? "yes" : "no"),
    el("td", { class: "num" }, t.threshold === null ? "default" : score(t.threshold)),
    el("td", { class: "num" }, t.example_count),
    el("td", {}, when(t.created_at)),
  );
}

async function createTopic(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const data = new FormData(form);
  const examples = lines(String(data.get("examples")));
  const body = {
    name: String(data.get("name")).trim(),
    action: String(data.get("action")),
    examples,
    allow_examples: lines(String(data.get("allow_examples"))),
  };
  const description = String(data.get("description")).trim();
  if (description) body.description = description;
  if (!body.name) return fieldError(byId("create-name"), "Give the topic a name, e.g. competitors.");
  if (!examples.length) return fieldError(byId("create-examples"), "Add at least one example, one per line.");
  const threshold = String(data.get("threshold")).trim();
  if (threshold) {
    const value = Number(threshold);
    if (!Number.isFinite(value) || value < 0 || value > 1) {
      return fieldError(byId("create-threshold"), "A threshold is a number between 0 and 1, or empty.");
    }
    body.threshold = value;
  }
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      const topic = await api("POST", "/v1/topics", body);
      form.reset();
      selectedId = topic.id;
      await refreshList();
      renderDetail(topic, `Topic “${topic.name}” is live. Try a paraphrase of its examples below.`);
      byId("paraphrase-text").focus();
    } catch (error) {
      showApiError(form, error, "topic-create-error");
    }
  });
}

async function openTopic(id) {
  selectedId = id;
  for (const row of byId("topics-table").tBodies[0].rows) row.classList.remove("selected");
  try {
    const topic = await api("GET", `/v1/topics/${id}`);
    byId("topics-table").querySelector(`tr[data-topic="${CSS.escape(topic.name)}"]`)?.classList.add("selected");
    renderDetail(topic);
  } catch (error) {
    selectedId = null;
    const detail = byId("topic-detail");
    detail.hidden = false;
    detail.replaceChildren(el("p", { class: "error", role: "alert" }, error.detail));
  }
}

function renderDetail(topic, notice = "") {
  const detail = byId("topic-detail");
  const custom = topic.kind === "custom";
  detail.hidden = false;
  const parts = [
    el("h2", { id: "detail-title" }, `${topic.name}`, el("span", { class: "muted" }, ` · ${topic.kind}`)),
    notice ? el("p", { class: "banner good", role: "status" }, notice) : null,
    topic.description ? el("p", {}, topic.description) : null,
    paraphraseBox(topic),
    settingsForm(topic),
    examplesSection(topic),
    custom ? evaluateForm(topic, afterThreshold) : el("p", { class: "muted" }, "Built-in categories are evaluated with `make eval`."),
    custom
      ? el(
          "div",
          { class: "actions danger-zone" },
          el("button", { type: "button", class: "danger", id: "topic-delete", onclick: () => deleteTopic(topic) }, "Delete topic…"),
        )
      : null,
  ];
  detail.replaceChildren(...parts.filter(Boolean)); // replaceChildren would print a null as "null"
}

// ------------------------------------------------------------------ paraphrase test
function paraphraseBox(topic) {
  const out = el("div", { id: "paraphrase-result", "aria-live": "polite" });
  const form = el(
    "form",
    { id: "paraphrase-form", novalidate: true },
    el(
      "div",
      { class: "field" },
      el("label", { for: "paraphrase-text" }, "Test a paraphrase"),
      el("input", { id: "paraphrase-text", name: "text", autocomplete: "off", "aria-describedby": "paraphrase-text-error" }),
      el("p", { class: "error", id: "paraphrase-text-error", role: "alert", hidden: true }),
    ),
    el("button", { type: "submit", class: "secondary" }, "Does it match?"),
    out,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const input = byId("paraphrase-text");
    if (!input.value.trim()) return fieldError(input, "Type a text to test.");
    await busy(form.querySelector("button"), async () => {
      try {
        const verdict = await api("POST", "/v1/classify", { text: input.value });
        const matched = verdict.flagged && verdict.category === topic.name;
        const topicScore = verdict.categories[topic.name];
        out.replaceChildren(
          el(
            "p",
            { "data-testid": "paraphrase-verdict" },
            matched ? el("span", { class: "badge bad" }, `Matches ${topic.name}`) : el("span", { class: "badge good" }, `Does not match ${topic.name}`),
            ` topic score ${score(topicScore)}, threshold ${score(topic.threshold)}; verdict: `,
            verdictBadge(verdict),
            ` ${verdict.category || ""}`,
          ),
        );
      } catch (error) {
        showApiError(form, error, input);
      }
    });
  });
  return form;
}

// ------------------------------------------------------------------ settings
function settingsForm(topic) {
  const form = el(
    "form",
    { id: "topic-settings", novalidate: true, "aria-label": "Topic settings" },
    el("h3", {}, "Settings"),
    el(
      "div",
      { class: "field" },
      el("label", { class: "inline", for: "edit-enabled" }, el("input", { id: "edit-enabled", name: "enabled", type: "checkbox", checked: topic.enabled }), "Enabled"),
    ),
    el(
      "div",
      { class: "field" },
      el("label", { for: "edit-action" }, "Action"),
      el(
        "select",
        { id: "edit-action", name: "action" },
        ["block", "flag"].map((a) => el("option", { value: a, selected: a === topic.action }, a)),
      ),
    ),
    el(
      "div",
      { class: "field" },
      el("label", { for: "edit-threshold" }, "Threshold"),
      el("input", {
        id: "edit-threshold",
        name: "threshold",
        inputmode: "decimal",
        autocomplete: "off",
        value: topic.threshold === null ? "" : String(topic.threshold),
        "aria-describedby": "edit-threshold-hint edit-threshold-error",
      }),
      el("p", { class: "hint", id: "edit-threshold-hint" }, `${topic.threshold_source}; empty: ${topic.kind === "custom" ? "recalibrate from the examples" : "the built-in default"}.`),
      el("p", { class: "error", id: "edit-threshold-error", role: "alert", hidden: true }),
    ),
    el("p", { class: "error", id: "topic-settings-error", role: "alert", hidden: true }),
    el("button", { type: "submit" }, "Save settings"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const raw = byId("edit-threshold").value.trim();
    const threshold = raw === "" ? null : Number(raw);
    if (threshold !== null && (!Number.isFinite(threshold) || threshold < 0 || threshold > 1)) {
      return fieldError(byId("edit-threshold"), "A threshold is a number between 0 and 1, or empty.");
    }
    const body = { enabled: byId("edit-enabled").checked, action: byId("edit-action").value, threshold };
    await busy(form.querySelector("button"), async () => {
      try {
        const updated = await api("PATCH", `/v1/topics/${topic.id}`, body);
        await refreshList();
        renderDetail(updated, "Saved.");
      } catch (error) {
        showApiError(form, error, "topic-settings-error");
      }
    });
  });
  return form;
}

// ------------------------------------------------------------------ examples
function examplesSection(topic) {
  const list = el(
    "ul",
    { class: "example-list", "aria-label": "Examples" },
    (topic.examples || []).map((e) =>
      el(
        "li",
        {},
        el("span", {}, e.role === "allow" ? el("em", {}, "allow: ") : null, e.text),
        el(
          "button",
          {
            type: "button",
            class: "secondary small",
            "aria-label": `Remove example: ${e.text}`,
            onclick: (event) => removeExample(topic, e, event.currentTarget),
          },
          "Remove",
        ),
      ),
    ),
  );
  const form = el(
    "form",
    { id: "examples-form", novalidate: true, "aria-label": "Add examples" },
    el(
      "div",
      { class: "field" },
      el("label", { for: "add-examples" }, "Add examples, one per line"),
      el("textarea", { id: "add-examples", name: "examples", rows: 3, "aria-describedby": "add-examples-error" }),
      el("p", { class: "error", id: "add-examples-error", role: "alert", hidden: true }),
    ),
    el(
      "div",
      { class: "field" },
      el("label", { for: "add-allow" }, "Add allow examples, one per line"),
      el("textarea", { id: "add-allow", name: "allow_examples", rows: 2, "aria-describedby": "add-allow-error" }),
      el("p", { class: "error", id: "add-allow-error", role: "alert", hidden: true }),
    ),
    el("p", { class: "error", id: "examples-form-error", role: "alert", hidden: true }),
    el("button", { type: "submit", class: "secondary" }, "Add"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { examples: lines(byId("add-examples").value), allow_examples: lines(byId("add-allow").value) };
    if (!body.examples.length && !body.allow_examples.length) {
      return fieldError(byId("add-examples"), "Type at least one example or allow example.");
    }
    await busy(form.querySelector("button"), async () => {
      try {
        await api("POST", `/v1/topics/${topic.id}/examples`, body);
        await refreshList();
        await openTopic(topic.id);
      } catch (error) {
        showApiError(form, error, "examples-form-error");
      }
    });
  });
  return el("section", { "aria-label": "Examples" }, el("h3", {}, `Examples (${(topic.examples || []).length})`), list, form);
}

async function removeExample(topic, example, button) {
  await busy(button, async () => {
    try {
      await api("DELETE", `/v1/topics/${topic.id}/examples/${example.id}`);
      await refreshList();
      await openTopic(topic.id);
    } catch (error) {
      button.after(el("span", { class: "error", role: "alert" }, error.detail));
    }
  });
}

async function afterThreshold(updated) {
  await refreshList();
  renderDetail(updated, `Threshold set to ${score(updated.threshold)}.`);
}

// ------------------------------------------------------------------ delete
async function deleteTopic(topic) {
  const ok = await confirmDialog(`Delete the topic “${topic.name}” and its ${topic.example_count} examples? Classify stops reporting it at once.`);
  if (!ok) return;
  try {
    await api("DELETE", `/v1/topics/${topic.id}`);
    selectedId = null;
    byId("topic-detail").hidden = true;
    await refreshList();
    byId("topics-title").focus();
  } catch (error) {
    byId("topic-delete").after(el("p", { class: "error", role: "alert" }, error.detail));
  }
}
