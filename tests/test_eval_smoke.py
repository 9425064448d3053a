"""Smoke test of the validation harness on a tiny built-in corpus (fake LLM, real embeddings)."""

from __future__ import annotations

import json
from pathlib import Path

from corpora import INTENT_TEMPLATES, intent_corpus


def test_harness_runs_end_to_end_and_orders_intent_count(tmp_path: Path, cache_dir: Path, fake_llm):
    from eval.validate import main

    data = tmp_path / "data"
    data.mkdir()
    rows = intent_corpus(list(INTENT_TEMPLATES), 12 * 40, seed=3)
    (data / "tiny.jsonl").write_text("".join(
        json.dumps({"id": f"t{i}", "text": text, "intent": intent}) + "\n"
        for i, (text, intent) in enumerate(rows)))
    out, markdown = tmp_path / "out", tmp_path / "RESULTS.md"
    main(["--data", str(data), "--datasets", "tiny", "--n", "60", "--reps", "2", "--model", "fake/echo",
          "--families", "intent_count,contamination", "--no-tail-audit", "--out", str(out), "--markdown", str(markdown),
          "--cache-dir", str(cache_dir)])

    text = markdown.read_text()
    assert "## tiny: Spearman with the true order" in text and "![intent_count](plots/intent_count.png)" in text
    assert (markdown.parent / "plots" / "intent_count.png").stat().st_size > 1000
    result = json.loads((out / "validation.json").read_text())["results"][0]
    assert result["cost"]["model_calls"] > 0 and result["agreement"]
    intent_rows = [r for r in result["rows"] if r["family"] == "intent_count" and r["rep"] == 0]
    by_level = {r["level"]: r["score_normalized"] for r in intent_rows}
    assert by_level[12] > by_level[2]  # the fake's criteria still separate 12 intents from 2
    assert all(r["distinct_2"] is not None and r["mauve"] is not None for r in intent_rows)
