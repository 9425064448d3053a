"""Smoke test of the validation harness on a tiny built-in corpus (fake LLM, real embeddings)."""

from __future__ import annotations

import json
from pathlib import Path

from corpora import INTENT_TEMPLATES, intent_corpus


def test_harness_runs_end_to_end_and_orders_intent_count(tmp_path: Path, cache_dir: Path, fake_llm):
    from eval.representations import setting_value
    from eval.validate import main

    data = tmp_path / "data"
    data.mkdir()
    rows = intent_corpus(list(INTENT_TEMPLATES), 12 * 40, seed=3)
    (data / "tiny.jsonl").write_text("".join(
        json.dumps({"id": f"t{i}", "text": text, "intent": intent}) + "\n"
        for i, (text, intent) in enumerate(rows)))
    out, markdown = tmp_path / "out", tmp_path / "RESULTS.md"
    main(["--data", str(data), "--datasets", "tiny", "--n", "60", "--reps", "2", "--model", "fake/echo",
          "--criteria-datasets", "all", "--criteria-reps", "1",
          "--families", "intent_count,contamination", "--no-tail-audit", "--out", str(out), "--markdown", str(markdown),
          "--cache-dir", str(cache_dir)])

    text = markdown.read_text()
    assert "## Protocol: nothing is reported on the data it was tuned on" in text
    assert "## Choosing the representation (out of sample)" in text and "### intent_count" in text
    result = json.loads((out / "validation.json").read_text())["results"][0]
    assert result["cost"]["model_calls"] > 0 and result["agreement"]
    intent_rows = [r for r in result["rows"] if r["family"] == "intent_count" and r["rep"] == 0]
    # criteria were extracted for the intent-count family's first repetition, as asked
    assert all({"text", "criteria", "hybrid@0.75"} <= set(r["views"]) for r in intent_rows)
    assert result["cost"]["unique_texts"] > result["cost"]["model_calls"]  # raw text for every corpus, LLM for some
    for view in ("text", "criteria"):
        by_level = {r["level"]: setting_value(r["views"][view]["scores"], "multi=0.2-0.8") for r in intent_rows}
        assert by_level[12] > by_level[2], view  # both views separate 12 intents from 2
    assert all(r["distinct_2"] is not None and r["mauve"] is not None for r in intent_rows)
    analysis = json.loads((out / "analysis.json").read_text())
    assert "text | one threshold" in analysis["comparison"] and analysis["text_full"]["one threshold"]["in_sample"]
