// Index: what serves (version, model, exemplars, built at), verify against the database, rebuild as a job polled
// by id (GET /v1/index/builds/{id}) with its progress.

import { api } from "./api.js";
import { busy, byId, el, when } from "./dom.js";

const POLL_MS = 500;
let badge = null;
let polling = false;

export function init() {
  byId("index-verify").addEventListener("click", verify);
  byId("index-rebuild").addEventListener("click", rebuild);
}

export async function show() {
  const state = await refresh();
  if (state && state.rebuilding) poll();
}

/** The header badge that shows a rebuild in progress on every page. */
export function watchRebuilds(node) {
  badge = node;
}

async function refresh() {
  try {
    const state = await api("GET", "/v1/index");
    render(state);
    return state;
  } catch (error) {
    byId("index-message").textContent = error.detail;
    return null;
  }
}

function render(state) {
  const facts = [
    ["Status", state.rebuilding ? `${state.status}, rebuilding` : state.status],
    ["Version", state.version],
    ["Model", state.model],
    ["Exemplars", state.count.toLocaleString()],
    ["Built at", when(state.built_at)],
    ["Worker", `process ${state.worker}`],
  ];
  if (state.error) facts.push(["Error", state.error]);
  byId("index-facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  byId("builds-table").tBodies[0].replaceChildren(
    ...state.recent_builds.map((b) =>
      el(
        "tr",
        {},
        el("td", { class: "num" }, b.version),
        el("td", {}, b.trigger),
        el("td", {}, b.topic || "—"),
        el("td", {}, b.error ? `${b.status}: ${b.error}` : b.status),
        el("td", { class: "num" }, b.exemplar_count),
        el("td", {}, when(b.finished_at)),
      ),
    ),
  );
  showProgress(state);
}

function showProgress(state) {
  const box = byId("index-progress");
  box.hidden = !state.rebuilding;
  const progress = state.progress;
  const bar = byId("index-progress-bar");
  let text = "Rebuilding…";
  if (progress && progress.total > 0) {
    bar.value = (100 * progress.done) / progress.total;
    text = `Rebuilding: ${progress.done} of ${progress.total} texts embedded`;
  } else {
    bar.removeAttribute("value"); // indeterminate until the first batch is embedded
  }
  byId("index-progress-label").textContent = text;
  if (badge) {
    badge.hidden = !state.rebuilding;
    badge.textContent = progress && progress.total ? `rebuilding ${Math.floor((100 * progress.done) / progress.total)} %` : "rebuilding";
  }
}

/** Poll GET /v1/index while a rebuild runs (from this tab or elsewhere); stops when it is done. */
async function poll() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const state = await refresh();
      if (!state || !state.rebuilding) break;
    }
  } finally {
    polling = false;
  }
}

async function verify() {
  const message = byId("index-message");
  await busy(byId("index-verify"), async () => {
    message.textContent = "Verifying…";
    try {
      const report = await api("GET", "/v1/index/verify");
      message.replaceChildren(
        report.ok
          ? el("span", { class: "badge good" }, "OK")
          : el("span", { class: "badge bad" }, "Mismatch"),
        ` ${report.index_exemplars} exemplars in the index, ${report.db_exemplars} in the database (version ${report.index_version}).`,
        ...report.problems.map((p) => el("div", { class: "error" }, p)),
      );
    } catch (error) {
      message.textContent = error.detail;
    }
  });
}

async function rebuild() {
  const message = byId("index-message");
  const button = byId("index-rebuild");
  await busy(button, async () => {
    const started = performance.now();
    let id;
    try {
      id = (await api("POST", "/v1/index/rebuild")).id; // 202 at once: the build runs in the background
      message.textContent = `Rebuild ${id} started.`;
    } catch (error) {
      if (error.code !== "rebuild_running") {
        message.textContent = `Rebuild failed: ${error.detail}`;
        return;
      }
      // one at a time, across every worker and replica: follow the build that runs (the 409 names it)
      id = error.body.build_id;
      message.textContent = `A rebuild is already running (build ${id}); following it.`;
    }
    await follow(id, started);
  });
}

/** Poll a build (GET /v1/index/builds/{id}: any worker answers it from the database) until it succeeded or failed. */
async function follow(id, started) {
  const message = byId("index-message");
  for (;;) {
    let build;
    try {
      build = await api("GET", `/v1/index/builds/${id}`);
    } catch (error) {
      message.textContent = `Rebuild ${id}: ${error.detail}`;
      break;
    }
    showJob(build);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (build.status === "succeeded") {
      message.textContent = `Rebuilt: version ${build.version} serves (${seconds} s).`;
      break;
    }
    if (build.status === "failed") {
      message.textContent = `Rebuild failed: ${build.error}`;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  await refresh();
}

function showJob(build) {
  const active = build.status === "queued" || build.status === "running";
  byId("index-progress").hidden = !active;
  const bar = byId("index-progress-bar");
  const progress = build.progress;
  let text = build.status === "queued" ? "Queued: waiting to start…" : "Rebuilding…";
  if (progress && progress.total > 0) {
    bar.value = (100 * progress.embedded) / progress.total;
    text = `Rebuilding: ${progress.embedded} of ${progress.total} texts embedded`;
  } else {
    bar.removeAttribute("value");
  }
  byId("index-progress-label").textContent = text;
  if (badge) {
    badge.hidden = !active;
    badge.textContent = progress && progress.total ? `rebuilding ${Math.floor((100 * progress.embedded) / progress.total)} %` : "rebuilding";
  }
}
