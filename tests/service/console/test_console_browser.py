"""The operator console in headless Chromium against a real `lightguard serve`: sign-in, try, topics, index,
decisions, keyboard and narrow screens. Playwright's `expect` waits for the page (no sleeps)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.service.console.conftest import ConsoleServer
from tests.service.support import COOKING, COOKING_PARAPHRASE

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.server

VIOLENT = "how do I build a bomb to kill people"
SAMPLE = "\n".join(
    [
        f"1\t{COOKING_PARAPHRASE}",
        "1\thow do I bake a chocolate cake in the oven",
        '{"text": "what is the capital of france", "match": false}',
        "0\treset my router password",
        "0\twho won the football match yesterday",
    ]
)


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def sign_in(page: Page, server: ConsoleServer, key: str, page_hash: str = "#/try") -> None:
    page.goto(f"{server.base}/console/{page_hash}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


@contextmanager
def topic(server: ConsoleServer, name: str) -> Iterator[dict[str, Any]]:
    """A custom topic made through the API for a test, removed afterwards whatever the test did to it."""
    created = server.api("POST", "/v1/topics", json={"name": name, "examples": COOKING})
    assert created.status_code == 201, created.text
    try:
        yield created.json()
    finally:
        server.api("DELETE", f"/v1/topics/{created.json()['id']}")


def classify_on_try_page(page: Page, text: str) -> None:
    page.goto(page.url.split("#")[0] + "#/try")
    page.get_by_label("Prompt", exact=True).fill(text)
    page.get_by_role("button", name="Classify", exact=True).click()


def test_an_open_server_says_every_endpoint_is_open(page: Page, bare_server: str) -> None:
    """First in the module: the server has no key until `console_server` makes them."""
    if httpx.get(f"{bare_server}/v1/me", timeout=10).status_code != 200:
        pytest.skip("keys exist already: this test runs first in the module, before console_server creates them")
    page.goto(f"{bare_server}/console/")
    expect(page.locator("#open-banner")).to_contain_text("every endpoint")
    expect(page.locator("#who")).to_contain_text("open server")
    expect(page.get_by_role("heading", name="Try a prompt")).to_be_visible()
    page.get_by_role("link", name="Topics").click()  # every page is open too
    expect(page.locator("#topics-table")).to_contain_text("violence")


def test_wrong_key_shows_a_clear_message_and_keeps_it(page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, "lg_not_a_real_key_123")
    error = page.locator("#signin-key-error")
    expect(error).to_contain_text("Not allowed")
    expect(error).to_contain_text("unknown or revoked")
    expect(page.get_by_label("API key")).to_have_value("lg_not_a_real_key_123")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#page-try")).to_be_hidden()


def test_sign_in_with_an_admin_key_opens_every_page(page: Page, console_server: ConsoleServer) -> None:
    page.goto(f"{console_server.base}/console")  # the redirect adds the slash
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, console_server, console_server.admin_key)
    expect(page.locator("#who")).to_contain_text("signed in: admin key")
    for name, heading in (("Topics", "Topics"), ("Index", "Index"), ("Decisions", "Decisions")):
        page.get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    page.reload()  # the key is kept for the tab (session storage)
    expect(page.locator("#who")).to_contain_text("signed in: admin key")


def test_try_a_prompt_shows_category_scores_and_evidence(page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, console_server.admin_key)
    classify_on_try_page(page, VIOLENT)
    verdict = page.get_by_test_id("verdict")
    expect(verdict.get_by_test_id("category")).to_have_text("violence")
    expect(verdict).to_contain_text("Blocked")
    expect(verdict).to_contain_text("against threshold")
    expect(verdict.get_by_test_id("category-bars").get_by_text("self_harm")).to_be_visible()
    evidence = verdict.get_by_test_id("evidence")
    expect(evidence.locator("tbody tr").first).to_contain_text(VIOLENT)
    expect(evidence.locator("tbody tr").first).to_contain_text("violence")
    # several lines → one row each
    page.get_by_label("Prompts, one per line").fill(f"{VIOLENT}\nwhat is the capital of france\n")
    page.get_by_role("button", name="Classify all").click()
    rows = page.get_by_test_id("batch-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("violence")
    expect(rows.nth(1)).to_contain_text("Allowed")


def test_create_a_topic_from_five_examples_then_a_paraphrase_matches(page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, console_server.admin_key, "#/topics")
    form = page.locator("#topic-create")
    form.get_by_label("Name").fill("baking")
    form.get_by_label("Examples, one per line", exact=True).fill("\n".join(COOKING))
    form.get_by_label("Action").select_option("flag")
    form.get_by_role("button", name="Create topic").click()
    try:
        expect(page.locator("#topics-table tr[data-topic=baking]")).to_contain_text("5")
        expect(page.locator("#topic-detail")).to_contain_text("is live")
        page.get_by_label("Test a paraphrase").fill(COOKING_PARAPHRASE)
        page.get_by_role("button", name="Does it match?").click()
        expect(page.get_by_test_id("paraphrase-verdict")).to_contain_text("Matches baking")
        classify_on_try_page(page, COOKING_PARAPHRASE)
        expect(page.get_by_test_id("verdict").get_by_test_id("category")).to_have_text("baking")
    finally:
        listed = console_server.api("GET", "/v1/topics").json()["topics"]
        for t in listed:
            if t["name"] == "baking":
                console_server.api("DELETE", f"/v1/topics/{t['id']}")


def test_evaluate_a_topic_with_a_pasted_sample_and_apply_the_suggestion(
    page: Page, console_server: ConsoleServer
) -> None:
    with topic(console_server, "bread") as made:
        sign_in(page, console_server, console_server.admin_key, "#/topics")
        page.get_by_role("button", name="Open bread").click()
        page.get_by_label("Labelled sample").fill(SAMPLE)
        page.get_by_role("button", name="Evaluate", exact=True).click()
        evaluation = page.get_by_test_id("evaluation")
        expect(evaluation).to_contain_text("5 texts: 2 that belong to the topic, 3 that do not")
        expect(evaluation).to_contain_text("False matches")
        expect(evaluation).to_contain_text("Recall")
        apply = page.get_by_role("button", name=re.compile("Apply suggested threshold"))
        suggested = float(apply.inner_text().rsplit(" ", 1)[1])
        apply.click()
        expect(page.locator("#topic-detail")).to_contain_text("Threshold set to")
        after = console_server.api("GET", f"/v1/topics/{made['id']}").json()
        assert after["threshold"] == pytest.approx(suggested, abs=5e-4)
        assert after["threshold_source"] == "manual"


def test_a_bad_sample_line_is_named_beside_the_field(page: Page, console_server: ConsoleServer) -> None:
    with topic(console_server, "pastry"):
        sign_in(page, console_server, console_server.admin_key, "#/topics")
        page.get_by_role("button", name="Open pastry").click()
        page.get_by_label("Labelled sample").fill("1\tgood line\nmaybe\tnot a label\n0\tother")
        page.get_by_role("button", name="Evaluate", exact=True).click()
        expect(page.locator("#evaluate-sample-error")).to_contain_text("Line 2")
        expect(page.get_by_label("Labelled sample")).to_have_value("1\tgood line\nmaybe\tnot a label\n0\tother")


def test_delete_a_topic_and_the_match_is_gone(page: Page, console_server: ConsoleServer) -> None:
    with topic(console_server, "oven"):
        sign_in(page, console_server, console_server.admin_key)
        classify_on_try_page(page, COOKING_PARAPHRASE)
        expect(page.get_by_test_id("verdict").get_by_test_id("category")).to_have_text("oven")
        page.get_by_role("link", name="Topics").click()
        page.get_by_role("button", name="Open oven").click()
        page.get_by_role("button", name="Delete topic…").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Delete the topic “oven”")
        dialog.get_by_role("button", name="Delete").click()
        expect(page.locator("#topics-table tr[data-topic=oven]")).to_have_count(0)
        classify_on_try_page(page, COOKING_PARAPHRASE)
        expect(page.get_by_test_id("verdict").get_by_test_id("category")).to_have_text("none")


def test_an_api_error_is_shown_beside_its_field_and_the_form_keeps_its_content(
    page: Page, console_server: ConsoleServer
) -> None:
    with topic(console_server, "cakes"):
        sign_in(page, console_server, console_server.admin_key, "#/topics")
        form = page.locator("#topic-create")
        form.get_by_label("Name").fill("cakes")  # taken
        form.get_by_label("Examples, one per line", exact=True).fill("one\ntwo")
        form.get_by_role("button", name="Create topic").click()
        expect(page.locator("#create-name-error")).to_contain_text("exists")
        expect(form.get_by_label("Name")).to_be_focused()
        expect(form.get_by_label("Examples, one per line", exact=True)).to_have_value("one\ntwo")


def test_a_classify_key_cannot_reach_the_topics_page(page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, console_server.classify_key, "#/topics")
    expect(page.locator("#who")).to_contain_text("classify key")
    expect(page.get_by_role("heading", name="Admin key needed")).to_be_visible()
    expect(page.locator("#denied-text")).to_contain_text("needs an admin key")
    expect(page.locator("#page-topics")).to_be_hidden()
    classify_on_try_page(page, VIOLENT)  # the try page still works with it
    expect(page.get_by_test_id("verdict").get_by_test_id("category")).to_have_text("violence")


def test_index_page_rebuilds_with_progress(page: Page, console_server: ConsoleServer) -> None:
    before = console_server.api("GET", "/v1/index").json()["version"]
    sign_in(page, console_server, console_server.admin_key, "#/index")
    expect(page.locator("#index-facts")).to_contain_text("hashing")
    page.get_by_role("button", name="Verify against the database").click()
    expect(page.locator("#index-message")).to_contain_text("OK")
    page.get_by_role("button", name="Rebuild the index").click()
    expect(page.locator("#index-message")).to_contain_text(re.compile(r"Rebuilt: version \d+ serves"))
    assert console_server.api("GET", "/v1/index").json()["version"] > before


def test_index_page_follows_the_rebuild_that_already_runs(page: Page, console_server: ConsoleServer) -> None:
    """A 409 names the build that runs (another tab, worker or replica started it): the page polls that one. The
    409 is the server's body for a build that is running; the build it names is real and is polled for real."""
    started = console_server.api("POST", "/v1/index/rebuild")
    assert started.status_code == 202, started.text
    build = started.json()["id"]
    body = {"error": "rebuild_running", "detail": f"a full build is already running (build {build})", "build_id": build}
    page.route("**/v1/index/rebuild", lambda route: route.fulfill(status=409, json=body))
    sign_in(page, console_server, console_server.admin_key, "#/index")
    page.get_by_role("button", name="Rebuild the index").click()
    expect(page.locator("#index-message")).to_contain_text(re.compile(r"Rebuilt: version \d+ serves"))
    version = console_server.api("GET", f"/v1/index/builds/{build}").json()["version"]
    expect(page.locator("#index-message")).to_contain_text(f"version {version} serves")


def test_decisions_page_lists_filters_and_counts(page: Page, console_server: ConsoleServer) -> None:
    for text in (VIOLENT, "what is the capital of france"):
        assert console_server.api("POST", "/v1/classify", json={"text": text}).status_code == 200
    sign_in(page, console_server, console_server.admin_key, "#/decisions")
    table = page.locator("#decisions-table tbody")
    expect(table.get_by_text(VIOLENT).first).to_be_visible()
    expect(page.get_by_test_id("counts")).to_contain_text("violence")
    page.get_by_label("Verdict").select_option("true")
    page.get_by_role("button", name="Apply").click()
    expect(table.get_by_text("what is the capital of france")).to_have_count(0)
    expect(table.locator("tr").first).to_contain_text("violence")


def test_keyboard_alone_signs_in_and_classifies(page: Page, console_server: ConsoleServer) -> None:
    page.goto(f"{console_server.base}/console/")
    page.get_by_label("API key").focus()
    page.keyboard.type(console_server.admin_key)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text("admin")
    page.get_by_label("Prompt", exact=True).focus()
    page.keyboard.type(VIOLENT)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("verdict").get_by_test_id("category")).to_have_text("violence")


@pytest.mark.parametrize("route", ["#/try", "#/topics", "#/index", "#/decisions"])
def test_pages_fit_a_narrow_screen(page: Page, console_server: ConsoleServer, route: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, console_server, console_server.admin_key, route)
    expect(page.locator("#who")).to_contain_text("admin")
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{route} scrolls sideways by {overflow} px at 390 px wide"
