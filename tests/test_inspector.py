"""The web inspector in a real headless browser (Debian's chromium, driven by Selenium with the
system chromedriver): connect with a key, see the timeline, search, see the expected hit with its
signals and why(), delete it, see it gone; facts and core memory. Screenshots of each page go to
docs/screenshots/ (linked from the README). .ci/run installs chromium and requires the test to
run; elsewhere it is skipped only when no browser is installed."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from engramdb import Memory, OnnxEmbedder
from engramdb.server.keys import create_key

from test_server import Server

SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

if not (BROWSER and DRIVER):
    if os.environ.get("ENGRAMDB_REQUIRE_BROWSER"):
        raise RuntimeError("this run needs chromium and chromium-driver installed (.ci/run installs them)")
    pytest.skip("no chromium/chromedriver installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[Any]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def test_inspector_search_delete_facts_core(tmp_path: Path, real_embedder: OnnxEmbedder, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with Memory(tmp_path / "i.db", embedder=real_embedder) as mem:
        _, key = create_key(mem.store, "acme")
        u = "acme/dana"
        mem.add([
            {"role": "user", "name": "Dana", "content": "I adopted a cat named Pixel yesterday.", "timestamp": "2024-05-02T10:00:00"},
            {"role": "user", "name": "Dana", "content": "I live in Porto and work as a nurse.", "timestamp": "2024-05-03T10:00:00"},
            {"role": "user", "name": "Dana", "content": "I moved to Lisbon last week.", "timestamp": "2024-06-12T10:00:00"},
        ], user_id=u, session_id="s1")
        mem.core_set("human", "Name: Dana. Nurse. Has a cat, Pixel.", user_id=u)
        srv = Server(mem)
        try:
            wait = WebDriverWait(browser, 20)
            browser.get(srv.url + "/")
            browser.find_element(By.ID, "key").send_keys(key)
            browser.find_element(By.ID, "connect").click()
            wait.until(lambda d: Select(d.find_element(By.ID, "user")).options)
            assert Select(browser.find_element(By.ID, "user")).first_selected_option.text == "dana"
            wait.until(ec.text_to_be_present_in_element((By.ID, "timeline"), "Pixel"))
            browser.save_screenshot(str(SHOTS / "timeline.png"))

            browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=search]").click()
            browser.find_element(By.ID, "query").send_keys("what is my cat called?\n")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#hits .hit")))
            first = browser.find_elements(By.CSS_SELECTOR, "#hits .hit")[0]
            assert "Pixel" in first.find_element(By.CLASS_NAME, "text").text
            assert "relevance" in first.text and "from episode" in first.text  # signals and why()
            browser.save_screenshot(str(SHOTS / "search.png"))
            first.find_element(By.XPATH, ".//button[text()='related']").click()  # the graph's links of the hit
            wait.until(lambda d: first.find_element(By.CLASS_NAME, "related").text.strip())
            cat_id = first.get_attribute("data-episode")
            first.find_element(By.CSS_SELECTOR, "button.danger").click()
            wait.until(ec.alert_is_present()).accept()
            wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "deleted"))
            time.sleep(0.3)
            shown = [h.get_attribute("data-episode") for h in browser.find_elements(By.CSS_SELECTOR, "#hits .hit")]
            assert cat_id not in shown
            assert cat_id not in {e.id for e in mem.list(user_id=u)}

            browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=facts]").click()
            wait.until(ec.text_to_be_present_in_element((By.ID, "facts"), "Lisbon"))
            assert "superseded" in browser.find_element(By.ID, "facts").text  # Porto, then Lisbon
            browser.save_screenshot(str(SHOTS / "facts.png"))
            browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=graph]").click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#graphview circle.entity")))
            assert {"Porto", "Lisbon"} <= set(browser.find_element(By.ID, "graphlist").text.split())
            browser.find_element(By.LINK_TEXT, "Lisbon").click()  # centre on one entity
            wait.until(lambda d: d.find_element(By.ID, "around").get_attribute("value") == "Lisbon")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#graphview rect.episode")))
            browser.save_screenshot(str(SHOTS / "graph.png"))
            browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=core]").click()
            wait.until(ec.text_to_be_present_in_element((By.ID, "core"), "Nurse"))
            browser.save_screenshot(str(SHOTS / "core.png"))
        finally:
            srv.stop()


def test_inspector_summary_tree_places_and_instances(tmp_path: Path, real_embedder: OnnxEmbedder, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with Memory(tmp_path / "t.db", embedder=real_embedder) as mem:
        u = "dana"
        for session, when, text in (
            ("s1", "2024-03-02T10:00:00", "I spent $200 on a pottery workshop at the community center with my friend Deborah."),
            ("s2", "2024-04-06T10:00:00", "Deborah and I went to a glazing workshop, I spent $120 on it."),
            ("s3", "2024-05-11T10:00:00", "I found my blue scarf at the gym this morning."),
        ):
            mem.add([{"role": "user", "name": "Dana", "content": text, "timestamp": when}], user_id=u, session_id=session)
        srv = Server(mem)
        try:
            wait = WebDriverWait(browser, 20)
            browser.get(srv.url + "/")
            browser.find_element(By.ID, "connect").click()
            wait.until(ec.text_to_be_present_in_element((By.ID, "timeline"), "scarf"))
            wait.until(lambda d: len(Select(d.find_element(By.ID, "place")).options) > 1)
            Select(browser.find_element(By.ID, "place")).select_by_visible_text("gym")  # the timeline at one place
            wait.until(lambda d: "pottery" not in d.find_element(By.ID, "timeline").text)
            assert "scarf" in browser.find_element(By.ID, "timeline").text

            browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=summary]").click()
            wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "Deborah"))
            tree = browser.find_element(By.ID, "summary").text
            assert "PEOPLE" in tree.upper() and "TOPICS" in tree.upper() and "session s1" in tree
            browser.save_screenshot(str(SHOTS / "summary.png"))

            browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=search]").click()
            browser.find_element(By.ID, "query").send_keys("How much did I spend on workshops in total?\n")
            wait.until(ec.presence_of_element_located((By.ID, "instances")))
            assert "2 possible instances" in browser.find_element(By.ID, "instances").text
        finally:
            srv.stop()
