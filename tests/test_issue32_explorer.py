"""Issue 32, "explorer": a caption true to the run, names at the clusters' centres, colours that do not
repeat, lacking modes first, and a diverse subset that never covers fewer modes than the batch.

One default run of the real CLI (raw-text modes, batch against a reference) shared by the module; the
page itself is opened in headless Chromium (skipped where it is absent).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import TESTS_DIR
from corpora import intent_corpus
from test_cli import run_cli, write_jsonl

INTENTS = ["weather", "alarm", "music", "joke", "transfer", "recipe", "translate", "flight", "calories", "timer",
           "balance", "directions"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("explorer32")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    env["CLUSTERDIV_CACHE_DIR"] = str(base / "cache")
    env["CLUSTERDIV_HISTORY_DB"] = str(base / "history.sqlite")
    # a batch of many modes (more than the 20-colour palette once split), two of the real intents absent
    batch = [t for t, _ in intent_corpus(INTENTS[:10], 100, seed=1)]
    real = [t for t, _ in intent_corpus(INTENTS, 96, seed=2)] + [t for t, _ in intent_corpus(["balance"], 24, seed=3)]
    batch_file = write_jsonl(base / "batch.jsonl", [{"id": f"b{i}", "text": t} for i, t in enumerate(batch)])
    real_file = write_jsonl(base / "real.jsonl", [{"id": f"r{i}", "text": t} for i, t in enumerate(real)])
    html, out = base / "page.html", base / "page.json"
    done = run_cli(["explore", str(batch_file), "--reference", str(real_file), "--html", str(html), "--json",
                    str(out), "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    return {"page": json.loads(out.read_text()), "html": html}


def test_the_map_caption_says_what_the_modes_were_clustered_from(run):
    page = run["page"]
    assert page["report"]["modes_from"]["kind"] == "text"
    assert "raw-text embeddings" in page["map_caption"] and "criteria" not in page["map_caption"]


def test_every_cluster_has_its_name_placed_at_the_median_of_its_points(run):
    page = run["page"]
    for c in page["clusters"]:
        xy = np.array([[p["x"], p["y"]] for p in page["points"] if p["cluster"] == c["cluster_id"]])
        assert [c["label_x"], c["label_y"]] == pytest.approx(np.median(xy, axis=0).tolist())


def test_the_diverse_subset_covers_every_mode_of_the_batch(run):
    subset = run["page"]["downloads"]["subset"]
    before, after = (int(v) for v in subset["summary"].split("modes covered ", 1)[1].split(",", 1)[0].split(" -> "))
    assert subset["rows"] >= before  # half the batch is room for a seat in every mode
    assert after == before, subset["summary"]


def test_the_page_labels_colours_and_sorts_lacking_modes_first(run, browser_page):
    page_data = run["page"]
    opened = browser_page(viewport={"width": 1400, "height": 1000})
    page = opened.page
    page.goto(run["html"].as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.inner_text("#map-note").endswith(page_data["map_caption"])
    traces = page.evaluate("() => document.getElementById('map').data.map("
                           "(t) => ({mode: t.mode, text: t.text, colours: t.marker ? t.marker.color : null,"
                           " clusters: t.customdata || null}))")
    labels = traces[-1]
    assert labels["mode"] == "text"
    lacking = [c for c in page_data["clusters"] if c["flag"] in ("missing", "under")]
    assert lacking and all(any(t.startswith(c["name"][:27]) for t in labels["text"]) for c in lacking)
    # one colour per cluster, never shared, however many clusters there are
    colour_of: dict[int, set[str]] = {}
    for t in traces[:-1]:
        for cluster, colour in zip(t["clusters"], t["colours"], strict=True):
            if cluster >= 0:
                colour_of.setdefault(cluster, set()).add(colour)
    assert len(colour_of) > 20 and all(len(v) == 1 for v in colour_of.values())
    assert len({next(iter(v)) for v in colour_of.values()}) == len(colour_of)
    # the table opens on the lacking modes: missing first, then under
    flags = page.eval_on_selector_all(".cluster-row", "(rows) => rows.map((r) => r.dataset.flag || '')")
    order = {"missing": 0, "under": 1}
    head = [order[f] for f in flags[:len(lacking)]]
    assert head == sorted(head) and len(head) == len(lacking) and set(flags[:len(lacking)]) <= set(order)
    assert not opened.console, opened.console
