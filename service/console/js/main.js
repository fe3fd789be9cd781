// The console's shell: who is signed in (GET /v1/me), the hash router, and which pages a key may open.

import { ApiError, api, storeKey, storedKey } from "./api.js";
import { byId, clearErrors, fieldError, plainWords } from "./dom.js";
import * as decisions from "./decisions.js";
import * as indexPage from "./index-page.js";
import * as topics from "./topics.js";
import * as tryPage from "./try.js";

const PAGES = {
  try: { module: tryPage, admin: false },
  topics: { module: topics, admin: true },
  index: { module: indexPage, admin: true },
  decisions: { module: decisions, admin: true },
};

/** `{open, role, key_id}` from GET /v1/me, or null while nobody is signed in. */
let session = null;
const started = new Set();

function showOnly(id) {
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== id;
  const heading = byId(id).querySelector("h1");
  // Move focus to the new page's heading so keyboard and screen-reader users land on what changed.
  if (heading && document.activeElement !== byId("signin-key")) heading.focus();
}

function pageName() {
  const name = location.hash.replace(/^#\/?/, "").split("?")[0];
  return name in PAGES ? name : "try";
}

function renderHeader() {
  const current = pageName();
  for (const link of document.querySelectorAll("#nav a")) {
    const locked = link.hasAttribute("data-admin") && session !== null && session.role !== "admin";
    link.classList.toggle("locked", locked);
    link.title = locked ? "needs an admin key" : "";
    if (link.dataset.page === current && session !== null) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  byId("open-banner").hidden = !(session && session.open);
  byId("sign-out").hidden = !(session && !session.open);
  byId("who").textContent = !session
    ? "not signed in"
    : session.open
      ? "open server (no keys)"
      : `signed in: ${session.role} key #${session.key_id}`;
}

async function route() {
  renderHeader();
  if (session === null) {
    showOnly("page-signin");
    return;
  }
  const name = pageName();
  const page = PAGES[name];
  if (page.admin && session.role !== "admin") {
    byId("denied-text").textContent =
      `The ${name} page needs an admin key. You are signed in with a ${session.role} key, which may only ` +
      "classify prompts (POST /v1/classify and /v1/moderations).";
    showOnly("page-denied");
    return;
  }
  if (!started.has(name)) {
    started.add(name);
    page.module.init();
  }
  showOnly(`page-${name}`);
  await page.module.show(session);
}

async function whoAmI(key) {
  return api("GET", "/v1/me", undefined, key);
}

async function start() {
  try {
    session = await whoAmI();
  } catch (error) {
    session = null;
    if (error instanceof ApiError && error.status === 403 && storedKey()) {
      storeKey("");
      await route();
      fieldError(byId("signin-key"), `${plainWords(error)} (the key this tab had stored was dropped)`);
      return;
    }
    if (!(error instanceof ApiError) || error.status !== 401) {
      await route();
      fieldError(byId("signin-key"), plainWords(error));
      return;
    }
  }
  await route();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const input = byId("signin-key");
  clearErrors(form);
  const key = input.value.trim();
  if (!key) {
    fieldError(input, "Enter an API key (it starts with lg_; `lightguard keys create` makes one).");
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    session = await whoAmI(key);
    storeKey(key);
    input.value = "";
    await route();
  } catch (error) {
    // The key stays in the field, so a typo can be fixed rather than typed again.
    fieldError(input, plainWords(error));
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  storeKey("");
  session = null;
  location.hash = "#/try";
  route();
}

byId("signin-form").addEventListener("submit", signIn);
byId("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
indexPage.watchRebuilds(byId("rebuild-badge"));
start();
