"""Recursion guard: a batch seeded from an earlier synthetic batch is flagged, one seeded from real data is not.

"Seeding" is simulated the way a generator rewrites its seed: the same request with a different
opener or closer ("hey, ...", "..., thanks"), which keeps the meaning and most of the wording.
The earlier synthetic batch and the real data are drawn from the same intents with different
fillers, so only the seed (not the topic) tells the two batches apart.
"""

from __future__ import annotations

import numpy as np
import pytest
from corpora import intent_corpus

from clusterdiv.core.errors import InputError
from clusterdiv.core.records import Example
from clusterdiv.tasks.anchoring import check_lineage
from clusterdiv.tasks.anchoring.lineage import (
    DEFAULT_PARAPHRASE_THRESHOLD,
    max_jaccard,
    normalize_text,
    shingles,
)

INTENTS = ["weather", "alarm", "transfer", "recipe", "music", "translate", "flight", "calories", "joke",
           "timer", "directions"]
FORMS = ["hey, {}", "{}, thanks", "could you tell me {}", "{} please", "quick question: {}", "{} right now"]


def rewrite(texts: list[str]) -> list[str]:
    return [FORMS[i % len(FORMS)].format(t) for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def data() -> dict[str, list[str]]:
    real = list(dict.fromkeys(t for t, _ in intent_corpus(INTENTS, 120, seed=1)))
    previous = [t for t in dict.fromkeys(t for t, _ in intent_corpus(INTENTS, 120, seed=2)) if t not in set(real)]
    return {"real": real, "previous": previous}


def test_seeded_from_synthetic_is_flagged_and_seeded_from_real_is_not(data, cache, embedder):
    from_synthetic = rewrite(data["previous"][:60])
    from_real = rewrite(data["real"][:60])
    flagged = check_lineage(from_synthetic, against=[data["previous"]], real=data["real"],
                            embedding_model=embedder, cache=cache).lineage
    clean = check_lineage(from_real, against=[data["previous"]], real=data["real"],
                          embedding_model=embedder, cache=cache).lineage
    assert flagged["share"] >= 0.85, flagged["by_evidence"]
    assert clean["recursion_seeded"] == 0, clean["flagged"][:3]
    # calibrated on the real data, not the default, and said so
    assert "percentile" in flagged["calibration"] and flagged["threshold"] != DEFAULT_PARAPHRASE_THRESHOLD
    first = flagged["flagged"][0]
    assert first["nearest_synthetic"]["similarity"] > first["nearest_real"]["similarity"]


def test_without_real_data_the_fixed_default_separates_paraphrases_from_new_texts(data, cache, embedder):
    paraphrases = rewrite(data["previous"][:40])
    others = list(dict.fromkeys(t for t, _ in intent_corpus(["balance", "joke", "music"], 40, seed=5)))
    others = [t for t in others if t not in set(data["previous"])]
    hits = check_lineage(paraphrases, against=[data["previous"]], embedding_model=embedder, cache=cache).lineage
    misses = check_lineage(others, against=[data["previous"]], embedding_model=embedder, cache=cache).lineage
    assert hits["threshold"] == DEFAULT_PARAPHRASE_THRESHOLD and "fixed default" in hits["calibration"]
    assert hits["real"] is None and "closer than the nearest real" not in hits["rule"]
    assert hits["share"] >= 0.85 and misses["share"] <= 0.15


def test_exact_and_near_duplicates_are_caught_before_embeddings(data, cache, embedder):
    source = data["previous"][:3]
    batch = [source[0].upper() + "!!", source[1] + " x", "a completely unrelated sentence about gardening"]
    report = check_lineage(batch, against=[source], embedding_model=embedder, cache=cache).lineage
    kinds = {f["id"]: f["reasons"][0].split(" ")[0] for f in report["flagged"]}
    assert sorted(kinds.values()) == ["exact_duplicate", "near_duplicate"]
    assert report["recursion_seeded"] == 2


def test_declared_lineage_chains_and_per_round_shares(cache, embedder):
    real = [Example(id=f"real{i}", text=t) for i, (t, _) in enumerate(intent_corpus(["weather"], 4, seed=1))]
    previous = [Example(id="old1", text="an old synthetic example about the weather")]
    batch = [
        Example(id="a", text="set an alarm for 6am", meta={"round": 1, "parent_ids": ["real0"]}),
        Example(id="b", text="tell me a joke about cats", meta={"round": 1, "seed_source": "real"}),
        Example(id="c", text="play some jazz music", meta={"round": 2, "parent_ids": ["a"]}),
        Example(id="d", text="how do i cook risotto", meta={"round": 2, "parent_ids": "old1"}),
        Example(id="e", text="book a flight to lima", meta={"round": 2, "seed_source": "synthetic"}),
        Example(id="f", text="translate thank you into german", meta={"round": 3, "parent_ids": ["c"]}),
    ]
    report = check_lineage(batch, against=[previous], real=real, embedding_model=embedder, cache=cache).lineage
    rounds = {r["round"]: r for r in report["rounds"]}
    assert [r["round"] for r in report["rounds"]] == ["1", "2", "3"]
    assert (rounds["1"]["share"], rounds["2"]["share"], rounds["3"]["share"]) == (0.0, 1.0, 1.0)
    assert set(report["flagged_ids"]) == {"c", "d", "e", "f"} and report["max_chain_depth"] == 3
    depth = {f["id"]: f["chain_depth"] for f in report["flagged"]}
    assert depth["c"] == 2 and depth["d"] == 2 and depth["f"] == 3
    assert report["by_evidence"] == {"declared": 4}


def test_jaccard_matches_a_direct_computation():
    queries = ["set an alarm for noon", "play jazz", "zzzz"]
    keys = ["set an alarm for 6am", "play some jazz music", "set a timer"]
    best, arg = max_jaccard(queries, keys)
    for q, b, a in zip(queries, best, arg, strict=True):
        direct = [len(shingles(q) & shingles(k)) / len(shingles(q) | shingles(k)) for k in keys]
        assert b == pytest.approx(max(direct)) and a == int(np.argmax(direct))
    assert normalize_text("  Set an ALARM,  please!! ") == "set an alarm please"


def test_empty_batch_and_missing_against_are_input_errors(cache):
    with pytest.raises(InputError, match="empty"):
        check_lineage([], against=[["x"]], cache=cache)
    with pytest.raises(InputError, match="earlier synthetic batch"):
        check_lineage(["x"], against=[], cache=cache)
