"""`compare`: several batches at one sample size in one shared clustering, with significance.

With fake/echo the `intent` criterion is a text's first two words, i.e. its template's opening,
so embedding only `intent` with a tight agglomerative threshold makes each opening one mode. That
pins the ground truth (a 2-intent batch has at most 8 modes, a 12-intent one up to 48) so the test
checks the comparison logic, not the embedding model.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from corpora import INTENT_TEMPLATES, intent_corpus

from clusterdiv.core.errors import InputError
from clusterdiv.llm.structured import LLMSettings
from clusterdiv.modes.config import ScoreConfig
from clusterdiv.tasks.compare import compare, disagreements, holm, permutation_p_value
from clusterdiv.tasks.compare_render import render_comparison_markdown

INTENTS = list(INTENT_TEMPLATES)


def texts(n_intents: int, n: int, seed: int) -> list[str]:
    return [t for t, _ in intent_corpus(INTENTS[:n_intents], n, seed=seed)]


# The criteria representation: these tests check what compare does with the fake model's criteria.
CONFIG = ScoreConfig(llm=LLMSettings(model="fake/echo"), criteria=["intent"], metrics="lexical,vendi",
                     representation={"kind": "criteria"},
                     clustering={"method": "agglomerative", "distance_threshold": 0.1})


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory):
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.llm.plugins import get_registry

    get_registry()
    # "wide" is larger on purpose: every batch must still be scored at the smallest size.
    batches = {"collapsed": texts(2, 40, seed=1), "mid": texts(6, 40, seed=2), "wide": texts(12, 60, seed=3)}
    with ModelCache(tmp_path_factory.mktemp("cache")) as cache:
        return compare(batches, config=CONFIG, cache=cache, permutations=500)


def test_batches_are_ranked_by_their_known_diversity_at_one_sample_size(comparison):
    assert comparison.sample_size == 40
    assert [b.n_input for b in comparison.batches] == [40, 40, 40]
    assert [b.n_available for b in comparison.batches] == [40, 40, 60]
    ranked = sorted(comparison.batches, key=lambda b: b.rank)
    assert [b.name for b in ranked] == ["wide", "mid", "collapsed"]
    assert comparison.batch("collapsed").n_modes <= 8 < comparison.batch("wide").n_modes
    # every metric is reported for every batch, with its interval where the metric has one
    for b in comparison.batches:
        assert {"distinct_1", "distinct_2", "self_bleu", "compression_ratio"} <= set(b.metrics)
        assert b.metrics["distinct_2"]["ci95"] is not None


def test_the_collapsed_batch_differs_significantly_and_its_dominant_cluster_is_over_represented(comparison):
    pair = next(p for p in comparison.pairwise if {p.a, p.b} == {"collapsed", "wide"})
    assert pair.significant and pair.p_adjusted < 0.05 and not pair.cis_overlap
    assert "permutation test" in comparison.significance_method and "Holm" in comparison.significance_method
    counts = comparison.cluster_counts["collapsed"]
    dominant = max((c for c in counts if c != -1), key=counts.__getitem__)
    collapsed = next(r for r in comparison.representation if r.batch == "collapsed")
    assert dominant in collapsed.over
    row = next(c for c in collapsed.clusters if c.cluster_id == dominant)
    assert row.batch_share >= 2 * row.reference_share  # "reference" here = the other batches pooled
    # the wide batch covers openings the collapsed one never produces
    wide = next(r for r in comparison.representation if r.batch == "wide")
    assert any(c.flag == "batch_only" for c in wide.clusters)


def test_markdown_shows_scores_metrics_and_the_test(comparison):
    text = render_comparison_markdown(comparison)
    assert "| 1 | wide |" in text and "| 3 | collapsed |" in text
    assert "## Pairwise differences in score_normalized" in text and "| collapsed vs wide |" in text
    assert "| self_bleu |" in text and "collapsed: clusters over/under-represented versus the other batches" in text


def test_vendi_is_tested_pair_by_pair_beside_the_modes(comparison):
    assert [(p.a, p.b) for p in comparison.vendi_pairwise] == [(p.a, p.b) for p in comparison.pairwise]
    pair = next(p for p in comparison.vendi_pairwise if {p.a, p.b} == {"collapsed", "wide"})
    wide_minus_collapsed = pair.difference if pair.a == "wide" else -pair.difference
    vendi = {b.name: b.metrics["vendi"]["value"] for b in comparison.batches}
    assert wide_minus_collapsed == pytest.approx(vendi["wide"] - vendi["collapsed"], rel=1e-9)
    assert wide_minus_collapsed > 0 and pair.significant and pair.cis_overlap is None
    assert "Vendi" in (comparison.vendi_significance_method or "")
    assert sorted(comparison.batches, key=lambda b: b.vendi_rank)[0].name == "wide"
    text = render_comparison_markdown(comparison)
    assert "## Pairwise differences in Vendi (same sample size)" in text and "warning" not in text


def test_a_vendi_order_against_the_modes_is_flagged_in_the_report(comparison):
    assert comparison.warnings == []  # here the two agree
    flipped = [p.model_copy(update={"difference": -p.difference}) for p in comparison.vendi_pairwise]
    warnings = disagreements(comparison.pairwise, flipped)
    assert len(warnings) == 1 and "collapsed vs wide" in warnings[0]
    text = render_comparison_markdown(comparison.model_copy(update={"warnings": warnings}))
    assert "> warning: Vendi orders" in text and "the other way from score_normalized" in text


def test_permutation_test_and_holm_adjustment():
    same_a, same_b = [0, 1, 2, 3] * 10, [3, 2, 1, 0] * 10
    assert permutation_p_value(same_a, same_b, reference_size=20, permutations=200, seed=0) == 1.0
    collapsed, varied = [0] * 30 + [1] * 10, list(range(2, 42))
    assert permutation_p_value(collapsed, varied, reference_size=20, permutations=200, seed=0) < 0.01
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_a_sample_larger_than_the_smallest_batch_is_bad_input(cache_dir):
    with pytest.raises(InputError, match="exceeds the smallest batch .'b' has 5"):
        compare({"a": texts(2, 10, 0), "b": texts(2, 5, 0)}, config=CONFIG, sample=8)
    with pytest.raises(InputError, match="at least two batches"):
        compare({"a": texts(2, 10, 0)}, config=CONFIG)
    with pytest.raises(InputError, match="permutations must be at least 1"):
        compare({"a": texts(2, 10, 0), "b": texts(2, 10, 1)}, config=CONFIG, permutations=0)


def test_compare_cli_json_chart_and_reference(tmp_path, subprocess_env):
    files = []
    for name, k, seed in (("gen_a", 2, 1), ("gen_b", 12, 2)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(k, 14, seed)), encoding="utf-8")
        files.append(str(path))
    real = tmp_path / "real.jsonl"
    real.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(12, 14, 9)), encoding="utf-8")
    chart = tmp_path / "cmp.png"
    args = ["compare", *files, "--names", "A,B", "--reference", str(real), "--model", "fake/echo",
            "--metrics", "lexical", "--format", "json", "--chart", str(chart), "--no-progress"]
    result = subprocess.run([sys.executable, "-m", "clusterdiv.cli", *args], env=subprocess_env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [b["name"] for b in report["batches"]] == ["A", "B"] and report["sample_size"] == 14
    assert report["reference"]["n_samples"] == 14
    assert {r["batch"] for r in report["versus_reference"]} == {"A", "B"}
    assert {r["versus"] for r in report["versus_reference"]} == {"reference"}
    assert len(report["pairwise"]) == 1 and 0 < report["pairwise"][0]["p_value"] <= 1
    # Vendi was not among the metrics asked for, so it is neither ranked nor tested
    assert report["vendi_pairwise"] == [] and report["vendi_significance_method"] is None
    assert {b["vendi_rank"] for b in report["batches"]} == {None}
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([sys.executable, "-m", "clusterdiv.cli", "compare", files[0], "--model", "fake/echo"],
                         env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "at least two" in bad.stderr
