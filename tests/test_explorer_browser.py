"""The explorer page in a real browser (Debian's Chromium driven by Playwright), served by a real server.

Opens the page of a finished job, checks the map rendered with one marker per example, clicks a
cluster in the list and on the map and checks its examples appear, and saves a screenshot under
eval/results/. Skips when Chromium is absent, except in CI, where `.ci/run` installs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from corpora import intent_corpus
from service_server import ServerProcess, wait_for_job

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "eval" / "results"
# Flags for a sandboxed, offline machine: no background networking, no first-run, fresh profile.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

if CHROMIUM is None:
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: `make install` installs it as a system package", pytrace=False)
    pytest.skip("chromium is not installed (make install adds it)", allow_module_level=True)


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("explorer")
    server = ServerProcess(workdir, args=["--representation", "criteria", "--model", "fake/echo"]).start()
    batch = [t for t, _ in intent_corpus(["weather", "alarm", "music", "recipe"], 40, seed=3)]
    batch += [t for t, _ in intent_corpus(["weather"], 20, seed=4)]  # an over-produced head
    reference = [t for t, _ in intent_corpus(["weather", "alarm", "music", "recipe", "joke", "flight"], 36, seed=5)]
    with server.client() as client:
        job = client.post("/v1/jobs", json={"kind": "score", "texts": batch, "reference": reference,
                                            "options": {"metrics": "none", "bootstrap": 50}}).json()
        done = wait_for_job(client, job["id"])
        assert done["status"] == "succeeded", done
        exploration = client.get(f"/v1/jobs/{job['id']}/exploration").json()
    yield server, job["id"], exploration
    server.stop()


def test_explorer_page_renders_the_map_and_shows_a_clusters_examples_on_click(finished_job):
    from playwright.sync_api import sync_playwright

    server, job_id, exploration = finished_job
    n_points = len(exploration["points"])
    by_cluster = {c["cluster_id"]: c for c in exploration["clusters"]}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/v1/jobs/{job_id}/explorer")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)

            # The map: a plotly SVG with one marker per example (batch and reference).
            assert page.locator("#map .main-svg").count() >= 1
            assert page.locator("#map .scatterlayer .point").count() == n_points

            # The list: one row per cluster; click the largest and read its examples.
            rows = page.locator(".cluster-row")
            assert rows.count() == len(exploration["clusters"])
            first = rows.first
            cluster_id = int(first.get_attribute("data-cluster-id"))
            first.click()
            detail = page.locator("#cluster-detail")
            detail.locator(".example-row").first.wait_for(timeout=10_000)
            assert by_cluster[cluster_id]["name"] in detail.inner_text()
            members = {p["text"] for p in exploration["points"] if p["cluster"] == cluster_id}
            shown = [t.strip() for t in detail.locator(".example-row").all_inner_texts()]
            assert shown and all(any(m in s for m in members) for s in shown)

            # A flagged cluster (the reference has intents the batch lacks) is highlighted.
            flags = {c["flag"] for c in exploration["clusters"] if c["flag"]}
            assert flags & {"missing", "under", "over"}
            assert page.locator(".cluster-row[data-flag]").count() >= 1

            # Clicking a marker on the map selects that marker's cluster.
            other = next(c for c in exploration["clusters"] if c["cluster_id"] != cluster_id)
            index = next(i for i, p in enumerate(exploration["points"]) if p["cluster"] == other["cluster_id"])
            point_ids = page.evaluate("() => window.clusterdivPointIndex && window.clusterdivPointIndex()")
            if point_ids:  # the page exposes which SVG marker is which example
                marker = page.locator("#map .scatterlayer .point").nth(point_ids.index(index))
            else:
                marker = page.locator("#map .scatterlayer .point").nth(index)
            marker.click(force=True)
            page.wait_for_function(
                "(name) => document.querySelector('#cluster-detail').innerText.includes(name)",
                arg=other["name"], timeout=10_000)

            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOT_DIR / "explorer.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert not errors, errors
        finally:
            browser.close()
