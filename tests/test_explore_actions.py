"""The explorer acting on the measurement (issue 17): descriptions checked against the cluster,
the coverage line leading the page, and the subset / seeds downloads embedded in the page.

Corpora and configuration come from tests/test_explore.py (fake LLM, real MiniLM embedder).
"""

from __future__ import annotations

import json
from pathlib import Path

from fake_llm import RAMBLE
from test_explore import config, corpus, total_calls

from clusterdiv.tasks.explore import explore
from clusterdiv.tasks.explore.naming import ClusterMember, Grounding, content_words


def test_a_rambling_description_is_replaced_by_the_criteria_and_counted(cache, fake_llm):
    texts = [t for t, _ in corpus(["weather", "alarm", "music"])]
    result = explore(texts, config=config("fake/ramble"), cache=cache, names="llm")

    assert len(result.clusters) == 3
    for c in result.clusters:
        # the LLM's name is kept; its description, about none of the members, is not
        assert c.named_by == "llm" and c.name
        assert c.description != RAMBLE and c.description.startswith("Most common criteria: ")
        assert c.description_error == "the description shares no word with the cluster's members"
    # the same corpus with a model whose descriptions are about the members: nothing replaced, and
    # the document's JSON has no `description_error` key at all (older documents read the same)
    fine = explore(texts, config=config("fake/echo"), cache=cache, names="llm")
    assert all(c.description_error is None and c.description.startswith("Messages that mostly start with")
               for c in fine.clusters)
    assert "description_error" not in fine.model_dump_json()


def _members(groups: dict[int, list[str]]) -> list[ClusterMember]:
    return [ClusterMember(example_id=f"{c}-{i}", cluster=c, text=t, criteria={"topic": t.split()[-1]})
            for c, texts in groups.items() for i, t in enumerate(texts)]


def test_grounding_needs_shared_words_and_the_cluster_among_the_best_fits():
    groups = {
        0: ["set an alarm for 6am", "set alarms for monday"],
        1: ["weather in paris tomorrow", "weather forecast for oslo"],
        2: ["book a flight to lima", "book flights to cairo"],
        3: ["play some jazz music", "play rock music"],
        4: ["cook pancakes for breakfast", "a recipe for sushi"],
    }
    g = Grounding(_members(groups), ["topic"], rank=1)
    assert content_words("Setting ALARMS for the morning") == {"setting", "alarm", "morning"}
    assert g.check(0, "Requests to set an alarm at a given time.") is None
    assert g.check(2, "Booking flights to cities.") is None  # "flights" = "flight"
    assert "shares no word" in g.check(4, RAMBLE)
    # about another cluster's members: this cluster shares one word, the weather cluster more
    assert "fits 1 other clusters" in g.check(3, "Weather forecast music for paris.")
    # near twins tie or rank close: with the default rank (3) a description may fit a neighbour as well
    twins = Grounding(_members({**groups, 5: ["set an alarm for noon", "set alarm at 7"]}), ["topic"])
    assert twins.check(0, "Set an alarm.") is None and twins.check(5, "Set an alarm.") is None


def test_with_a_reference_the_header_opens_with_the_reports_coverage_line(cache, fake_llm):
    from markupsafe import escape

    from clusterdiv.reports.coverage import coverage_line
    from clusterdiv.tasks.explore import render_explorer_html

    batch = [t for t, _ in corpus(["weather", "alarm", "music"])]
    reference = [t for t, _ in corpus(["weather", "alarm", "translate"], per_intent=6)]
    result = explore(batch, reference=reference, config=config(), cache=cache)
    line = coverage_line(result.report.cluster_shares)  # as the CLI table and the markdown open with
    # the translate mode (6 of 18 real examples) is missing; the music mode is batch-only
    assert line is not None
    assert "1 lacking (1 missing, 0 under-covered, false discovery rate 0.05)" in line and "of 3 real modes" in line
    assert "the 1 lacking mode holds 33.3% of the real data" in line and "most over-produced" in line
    html = render_explorer_html(result)
    header = html.split("<header>", 1)[1].split("</header>", 1)[0]
    assert header.index('id="title"') < header.index('id="coverage"') < header.index('id="score"')
    assert f'<div id="coverage">{escape(line)}</div>' in header  # autoescaped: mode names are quoted
    # without a reference there is no coverage line
    alone = render_explorer_html(explore(batch, config=config(), cache=cache))
    assert 'id="coverage"' not in alone.split("<header>", 1)[1].split("</header>", 1)[0]


def test_the_page_offers_the_subset_and_the_seeds_with_their_row_counts_and_no_extra_llm_call(cache, fake_llm):
    from test_explore import embedded_json

    from clusterdiv.tasks.actions import select_subset, tail_seeds
    from clusterdiv.tasks.explore import Exploration, render_explorer_html

    batch = [t for t, _ in corpus(["weather", "alarm", "music"])]  # 24
    reference = [t for t, _ in corpus(["weather", "alarm", "translate"], per_intent=6)]
    plain = explore(batch, reference=reference, config=config(), cache=cache)
    assert plain.downloads is None and "downloads" not in plain.model_dump_json()
    calls = total_calls(fake_llm)
    result = explore(batch, reference=reference, config=config(), cache=cache, downloads=True, subset_budget=9)
    assert total_calls(fake_llm) == calls  # the downloads reuse the run's extractions: no LLM call

    html = render_explorer_html(result)
    assert 'id="downloads"' in html and "URL.createObjectURL" in html
    page = Exploration.model_validate(json.loads(embedded_json(html)))
    subset, seeds = page.downloads.subset, page.downloads.seeds
    assert subset.filename == "exploration.subset.jsonl" and subset.rows == 9
    rows = [json.loads(line) for line in subset.content.splitlines()]
    assert len(rows) == 9 and set(rows) <= set(batch)  # plain strings in, plain strings out
    # the same subset `select` gives on the same data
    assert rows == [e.text for e in select_subset(batch, budget=9, reference=reference, config=config(),
                                                  cache=cache, cover_modes=True).examples]
    # seeds: one line per lacking mode, here the translate mode only, named as on the page
    lines = [json.loads(line) for line in seeds.content.splitlines()]
    expected = tail_seeds(batch, reference=reference, config=config(), cache=cache)
    assert seeds.rows == len(lines) == expected.n_lacking == 1
    assert lines[0]["name"] == next(c.name for c in result.clusters if c.flag == "missing")
    assert lines[0]["flag"] == "missing"
    assert len(lines[0]["seeds"]) == 5 and all(s["text"] in reference for s in lines[0]["seeds"])
    # without a reference the page offers the subset only (default budget: half the batch)
    alone = explore(batch, config=config(), cache=cache, downloads=True)
    assert alone.downloads.seeds is None and alone.downloads.subset.rows == 12


def test_the_service_page_downloads_both_files_under_its_csp(tmp_path, browser_page):
    """A job's explorer page, in Chromium under the service's strict CSP: both links download their file."""
    from service_server import ServerProcess, wait_for_job

    batch = [t for t, _ in corpus(["weather", "alarm", "music"])]
    reference = [t for t, _ in corpus(["weather", "alarm", "translate"], per_intent=6)]
    server = ServerProcess(tmp_path, args=["--representation", "criteria", "--model", "fake/echo"]).start()
    try:
        with server.client() as client:
            job = client.post("/v1/jobs", json={"kind": "score", "texts": batch, "reference": reference,
                                                "options": {"metrics": "none", "bootstrap": 20}}).json()
            assert wait_for_job(client, job["id"])["status"] == "succeeded"
        opened = browser_page(accept_downloads=True)
        page = opened.page
        response = page.goto(f"{server.url}/v1/jobs/{job['id']}/explorer")
        assert "content-security-policy" in response.headers
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        got = {}
        for key in ("subset", "seeds"):
            link = page.locator(f"#download-{key}")
            assert link.get_attribute("href").startswith("blob:")
            with page.expect_download() as info:
                link.click()
            download = info.value
            got[key] = (download.suggested_filename, Path(download.path()).read_text(encoding="utf-8"),
                        int(link.get_attribute("data-rows")))
    finally:
        server.stop()
    assert opened.csp_violations() == []
    name, text, rows = got["subset"]
    assert name.endswith(".subset.jsonl") and rows == 12 and len(text.splitlines()) == 12
    assert {json.loads(line) for line in text.splitlines()} <= set(batch)
    name, text, rows = got["seeds"]
    seeds = [json.loads(line) for line in text.splitlines()]
    assert name.endswith(".seeds.jsonl") and rows == len(seeds) == 1 and seeds[0]["flag"] == "missing"
    assert seeds[0]["seeds"] and all(s["text"] in reference for s in seeds[0]["seeds"])
