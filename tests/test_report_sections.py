"""Typed report sections (issue 14): the anchoring sections are models in the Report, the per-mode
shares are read typed and are no metric, and the JSON round-trips unchanged."""

from __future__ import annotations

import json

from test_anchoring_mix import known_mix

from clusterdiv.history.store import flatten_metrics
from clusterdiv.reports.report import Report
from clusterdiv.reports.sections import ClusterShare, ClusterShares, MixBudget, MixGroup
from clusterdiv.tasks.anchoring import mix_budget
from clusterdiv.tasks.anchoring.render import render_markdown


def test_sections_are_models_and_round_trip():
    report = mix_budget(known_mix(), label_field="label", target_real_share=0.5)
    assert isinstance(report.mix, MixBudget) and all(isinstance(g, MixGroup) for g in report.mix.groups)
    assert report.mix.overall.n == 9 and report.mix["overall"]["n"] == 9  # dict-era reads still work
    text = report.to_json()
    back = Report.model_validate_json(text)
    assert isinstance(back.mix, MixBudget) and back.to_json() == text
    assert json.loads(text)["mix"] == report.mix.model_dump(mode="json")
    assert render_markdown(back) == render_markdown(report)


def test_cluster_shares_are_typed_and_not_a_metric():
    row = ClusterShare(cluster_id=3, batch_count=0, reference_count=4, batch_share=0.0, reference_share=0.4,
                       ratio=0.0, flag="missing", criteria_summary="timers")
    shares = ClusterShares(method="agglomerative", n_batch=10, n_reference=10, n_shared_clusters=1,
                           under_covered=[3], clusters=[row])
    metric = {"value": 0.5, "ci95": [0.4, 0.6], "meaning": "m", "details": {}}
    report = Report(n_input=10, metrics={"distinct_2": metric, "cluster_shares": shares.model_dump(mode="json")})
    assert report.cluster_shares == shares and report.cluster_shares.clusters[0].flag == "missing"
    assert list(report.metric_values()) == ["distinct_2"]
    assert "cluster_shares" not in flatten_metrics(report)
    # the JSON keeps the shares where every written report has them
    assert list(json.loads(report.to_json())["metrics"]) == ["distinct_2", "cluster_shares"]
    assert Report(n_input=1).cluster_shares is None


def test_a_batch_off_the_reference_gets_a_fidelity_warning(cache):
    """The headline cannot tell new modes from off-distribution text; the reference can. A batch of
    other intents than the reference's is warned about, a fresh sample of the same intents is not."""
    from corpora import intent_corpus

    from clusterdiv import score
    from clusterdiv.reports.report import LOW_FIDELITY

    banking = ["transfer", "balance"]
    reference = [t for t, _ in intent_corpus(banking, 60, seed=1)]
    same = score([t for t, _ in intent_corpus(banking, 30, seed=2)], reference=reference, metrics="reference",
                 cache=cache)
    off = score([t for t, _ in intent_corpus(["joke", "recipe", "music"], 30, seed=3)], reference=reference,
                metrics="reference", cache=cache)

    assert same.metrics["precision"]["value"] >= LOW_FIDELITY
    assert not [w for w in same.warnings if "k-NN precision" in w]
    assert off.metrics["precision"]["value"] < LOW_FIDELITY
    [warning] = [w for w in off.warnings if "k-NN precision" in w]
    assert warning.startswith(f"only {off.metrics['precision']['value']:.0%} of the batch lies near the reference")
    assert "coverage" in warning


def test_vendi_normalized_follows_the_reports_reference_size(cache):
    """The size-free Vendi refers to the same sample size as `score_normalized` (`reference_size`),
    so one setting moves both; below that size it is n/a with its reason, not a scaled-down guess."""
    from corpora import intent_corpus

    from clusterdiv import score

    texts = [t for t, _ in intent_corpus(["transfer", "balance", "joke", "recipe"], 40, seed=4)]
    at_20 = score(texts, metrics="vendi,vendi_normalized", reference_size=20, cache=cache)
    vn = at_20.metrics["vendi_normalized"]
    assert vn["details"]["reference_size"] == 20 and vn["details"]["subsets"] == 20
    assert 1 / 20 <= vn["value"] <= 1.0
    assert at_20.normalization.startswith("expected distinct modes at 20 samples")

    at_100 = score(texts, metrics="vendi,vendi_normalized", cache=cache)
    assert at_100.metrics["vendi_normalized"]["value"] is None
    assert f"{len(texts)} rows are fewer than the reference size 100" in at_100.metrics["vendi_normalized"]["details"]["reason"]
    assert at_100.metrics["vendi"]["value"] == at_20.metrics["vendi"]["value"]  # the raw Vendi ignores the setting
