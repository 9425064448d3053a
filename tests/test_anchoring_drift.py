"""Shelf life: as more of a batch moves off the fresh real distribution, every signal must say so.

The batch starts as a sample of the reference's intents and has growing fractions replaced by
intents the reference never shows, which is how a stale batch looks from the fresh data's side.
"""

from __future__ import annotations

import numpy as np
import pytest
from corpora import intent_corpus

from clusterdiv.core.errors import InputError
from clusterdiv.modes.cluster import ClusterParams
from clusterdiv.tasks.anchoring import drift, render_markdown
from clusterdiv.tasks.anchoring.drift import share_shift

IN = ["weather", "alarm", "transfer", "recipe", "music", "translate", "flight", "calories"]
OFF = ["joke", "timer", "balance", "directions"]
N = 160
RANK = {"fresh": 0, "drifting": 1, "stale": 2}


def shifted(fraction: float) -> list[str]:
    k = int(round(fraction * N))
    return [t for t, _ in intent_corpus(IN, N - k, seed=2)] + [t for t, _ in intent_corpus(OFF, k, seed=3)]


@pytest.fixture(scope="module")
def reference() -> list[str]:
    return [t for t, _ in intent_corpus(IN, N, seed=1)]


def test_drift_grows_as_the_batch_moves_away(reference, cache, embedder):
    # Agglomerative clustering (deterministic, no UMAP start-up cost) is enough for 8 + 4 intents.
    params = ClusterParams(method="agglomerative")
    runs = [drift(shifted(f), reference, cluster_on="text", cluster_params=params, embedding_model=embedder,
                  cache=cache, as_of="2026-01-01").drift for f in (0.0, 0.25, 0.5, 1.0)]
    mauve = [r["metrics"]["mauve"]["value"] for r in runs]
    precision = [r["metrics"]["precision"]["value"] for r in runs]
    shift = [r["share_shift"] for r in runs]
    verdicts = [r["verdict"] for r in runs]
    assert all(a > b for a, b in zip(mauve, mauve[1:], strict=False)), mauve
    assert all(a > b for a, b in zip(precision, precision[1:], strict=False)), precision
    assert shift[0] < 0.08 < shift[-1] and shift == sorted(shift), shift
    assert verdicts[0] == "fresh" and verdicts[-1] == "stale", verdicts
    assert [RANK[v] for v in verdicts] == sorted(RANK[v] for v in verdicts), verdicts
    assert all(r["reasons"] for r in runs)


def test_llm_criteria_shares_name_the_modes_the_batch_lost(reference, cache, fake_llm, embedder):
    # The fresh data has intents the batch never had: those modes must show up as missing. (The fake LLM's
    # criteria split an intent into its template openings, so 40 real examples an intent give modes of ~10:
    # enough to be significantly absent from 160 batch examples; 6 an intent gave untestable modes.)
    batch = [t for t, _ in intent_corpus(IN[:4], 160, seed=2)]
    fresh = [t for t, _ in intent_corpus(IN, 320, seed=1)]
    report = drift(batch, fresh, cluster_on="criteria", model="fake/echo", embedding_model=embedder,
                   cluster_params=ClusterParams(method="agglomerative"), cache=cache, as_of="2026-01-01")
    section = report.drift
    assert section["missing_modes"] and section["verdict"] != "fresh"
    assert "LLM criteria (fake/echo)" in section["clustering"]
    assert any(s["flag"] == "missing" and s["reference_share"] > 0 for s in section["shifts"])
    assert "false discovery rate 0.05" in section["flag_test"]
    assert report.command == "drift" and report.timings.llm_calls > 0


def test_expiry_date_is_recorded_and_past_it_the_batch_is_stale(reference, cache, embedder):
    batch = shifted(0.0)
    kept = drift(batch, reference, cluster_on=None, expires_after="2027-01-31", as_of="2027-01-01",
                 embedding_model=embedder, cache=cache).drift
    assert kept["verdict"] == "fresh" and kept["days_left"] == 30 and kept["expires_after"] == "2027-01-31"
    expired = drift(batch, reference, cluster_on=None, expires_after="2027-01-31", as_of="2027-02-01",
                    embedding_model=embedder, cache=cache)
    section = expired.drift
    assert section["verdict"] == "stale" and section["expired"] and section["reasons"][0].startswith("expired")
    assert render_markdown(expired).startswith("**STALE: expired")
    with pytest.raises(InputError, match="date like"):
        drift(batch, reference, expires_after="next year", cache=cache)


def test_share_shift_subtracts_sampling_noise():
    same = np.array([30, 30, 20, 20])
    tv, null, excess = share_shift(same, same)
    assert tv == 0.0 and null > 0 and excess == 0.0
    disjoint = share_shift(np.array([50, 50, 0, 0]), np.array([0, 0, 50, 50]))
    assert disjoint[0] == 1.0 and disjoint[2] > 0.8
