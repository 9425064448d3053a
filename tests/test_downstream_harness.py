"""The downstream harness (eval/downstream.py, eval/generate.py) on a tiny inline configuration.

No ../shared data and no real model: an inline intent corpus and the fake LLM plugin (its echo
answer is swapped for a deterministic generator answer built from the shown examples).
"""

from __future__ import annotations

import json
import math
import re

import pytest

INTENTS = {
    "balance": ["what is my account balance", "how much money do i have in checking",
                "show me the balance of my savings", "tell me my current balance",
                "how much is left in my account", "check my balance please", "balance of my bank account now"],
    "transfer": ["send fifty dollars to my savings", "move money from checking to savings",
                 "transfer 100 dollars to john", "wire money to my mother", "make a transfer to my other account",
                 "i want to transfer funds", "push 20 bucks to savings"],
    "card_lost": ["i lost my credit card", "my card was stolen yesterday", "block my card i cannot find it",
                  "report a lost debit card", "someone took my card", "i misplaced my visa card",
                  "freeze the card i lost"],
    "pay_bill": ["pay my electricity bill", "i need to pay the water bill", "settle my phone bill today",
                 "pay the gas company", "make a payment on my internet bill", "schedule my rent payment",
                 "pay my cable bill now"],
}
TEST = [("what's the balance on my account", "balance"), ("how much do i have", "balance"),
        ("send money to my brother", "transfer"), ("transfer cash to savings", "transfer"),
        ("my card is gone", "card_lost"), ("i can't find my debit card", "card_lost"),
        ("pay the electric bill", "pay_bill"), ("i want to pay my phone bill", "pay_bill")]


def fake_generator_answer(text: str) -> dict[str, list[str]]:
    """Five deterministic 'new' messages from the shown examples: word rotations of each."""
    shown = [line for line in text.splitlines() if line.strip()] or ["empty message here"]
    out = []
    for k in range(5):
        words = re.findall(r"\w+", shown[k % len(shown)])
        r = k % max(1, len(words))
        out.append(" ".join(words[r:] + words[:r]) + f" {k}")
    return {"utterances": out}


@pytest.fixture
def generator_llm(fake_llm, monkeypatch):
    import fake_llm as module

    monkeypatch.setattr(module, "echo_criteria", fake_generator_answer)
    return fake_llm


def test_downstream_utility_counts_missing_intents_and_handles_one_label(cache):
    from eval.downstream import downstream_utility

    texts = [t for i in INTENTS for t in INTENTS[i]]
    labels = [i for i in INTENTS for _ in INTENTS[i]]
    test_texts, test_labels = [t for t, _ in TEST], [i for _, i in TEST]
    full = downstream_utility(texts, labels, test_texts, test_labels, tail_labels={"pay_bill"}, cache=cache)
    assert full["accuracy"] >= 0.75 and full["macro_recall"] >= 0.75
    assert full["test_intents_covered"] == 4
    # two intents only: the others count as recall 0, so macro recall is at most one half
    two = [(t, i) for t, i in zip(texts, labels, strict=True) if i in {"balance", "transfer"}]
    part = downstream_utility([t for t, _ in two], [i for _, i in two], test_texts, test_labels,
                              tail_labels={"pay_bill"}, cache=cache)
    assert part["macro_recall"] <= 0.5 < full["macro_recall"]
    assert part["tail_recall"] == 0.0 and part["test_intents_covered"] == 2
    # a single label: predicted everywhere, no error
    one = downstream_utility(INTENTS["balance"], ["balance"] * 7, test_texts, test_labels, cache=cache)
    assert one["accuracy"] == 0.25 and one["macro_recall"] == 0.25 and math.isnan(one["tail_recall"])
    # deterministic
    assert downstream_utility(texts, labels, test_texts, test_labels, tail_labels={"pay_bill"}, cache=cache) == \
        downstream_utility(texts, labels, test_texts, test_labels, tail_labels={"pay_bill"}, cache=cache)


def _run(cache, regimes):
    from eval.generate import run, tiny_config

    cfg = tiny_config()
    intents = sorted(INTENTS)
    return run(pool=INTENTS, test=TEST, intents=intents, tails=intents[-cfg["tails"]:], model="fake/echo",
               cache=cache, rounds=cfg["rounds"], calls_per_intent=cfg["calls_per_intent"],
               recursion_calls=cfg["recursion_calls"], round0_head=cfg["round0_head"],
               round0_tail=cfg["round0_tail"], regimes=regimes)


def test_generation_is_deterministic_and_resumable_from_cache(cache, generator_llm):
    all_regimes = ("replace", "accumulate", "template_t0.2", "personas_t1.0")
    # an interrupted run: only the recursion regimes finished
    partial = _run(cache, ("replace", "accumulate"))
    first_calls = partial["cost"]["model_calls"]
    assert first_calls > 0 and partial["cost"]["failures"] == 0
    full = _run(cache, all_regimes)
    # resumed: the recursion is served from the cache, only the new regimes call the model
    assert full["cost"]["cache_hits"] >= first_calls
    assert full["cost"]["model_calls"] == 2 * len(INTENTS)  # one call per intent for each one-shot regime
    again = _run(cache, all_regimes)
    assert again["cost"]["model_calls"] == 0
    full.pop("cost"), again.pop("cost")
    assert json.dumps(full, sort_keys=True) == json.dumps(again, sort_keys=True)

    batches = {(b["regime"], b["round"]): b for b in full["batches"]}
    assert set(batches) == {("real", None), ("template_t0.2", None), ("personas_t1.0", None),
                            *((f"recursive_{r}", k) for r in ("replace", "accumulate") for k in range(3)),
                            ("accumulated_pool", 1), ("accumulated_pool", 2)}
    for b in full["batches"]:
        assert 0.0 < b["headline"] <= 1.0 and b["headline_ci95"][0] <= b["headline"] <= b["headline_ci95"][1]
        assert 0.0 <= b["accuracy"] <= 1.0 and "vendi" in b and 0.0 <= b["quality"]["fluent_pass"] <= 1.0
    # round 0 is the real seed batch, shared by both regimes; later rounds are generated and labelled
    # with the intent asked for
    r0 = batches[("recursive_replace", 0)]
    assert r0["examples"] == batches[("recursive_accumulate", 0)]["examples"]
    assert r0["n"] == 3 * 4 + 1
    gen_round = batches[("recursive_replace", 1)]
    assert gen_round["n"] == 3 * 5 and all(label in INTENTS for _, label in gen_round["examples"])
    # under accumulate the training set is the real round 0 plus every generated round so far
    assert batches[("accumulated_pool", 2)]["n"] == r0["n"] + 2 * 3 * 5
    assert batches[("real", None)]["quality"]["copied_real"] == 1.0
    for b in full["batches"]:  # against the real held-out split, where the batch has more than k rows
        if b["n"] > 5:
            assert all(0.0 <= b["vs_real"][k] <= 1.0 for k in ("precision", "recall", "coverage"))
    # `--rescore`: the saved examples alone give the same scores, without a model call
    from eval.generate import score_all

    rescored = score_all([{"regime": b["regime"], "round": b["round"], "rows": b["examples"]}
                          for b in full["batches"]], pool=INTENTS, test=TEST, intents=full["intents"],
                         tails=full["tails"], cache=cache)
    assert json.dumps(rescored, sort_keys=True) == json.dumps(full["batches"], sort_keys=True)


def test_correlation_analysis_is_deterministic_and_signed():
    from eval.downstream import analyse, correlate

    rows = [{"family": "f", "rep": 0, "headline": x / 10, "vendi": 10 - x, "distinct_1": 0.5,
             "distinct_2": x, "distinct_3": x, "distinct_4": x, "self_bleu": -x, "compression_ratio": x,
             "embedding_mean_cosine": -x, "macro_recall": x / 10 + 0.01, "accuracy": x / 10,
             "tail_recall": float("nan")} for x in range(8)]
    c = correlate(rows, "headline", n_boot=200)
    assert c["spearman"] == 1.0 and c["kendall"] == 1.0 and c["spearman_ci95"] == [1.0, 1.0]
    assert correlate(rows, "vendi", n_boot=50)["spearman"] == -1.0  # falls as recall rises
    assert correlate(rows, "self_bleu", n_boot=50)["spearman"] == 1.0  # sign-corrected (lower = diverse)
    assert correlate(rows, "distinct_1", n_boot=50)["spearman"] is None  # constant: undefined, not 0
    results = [{"dataset": "a", "rows": rows}, {"dataset": "b", "rows": rows[::-1]}]
    a1 = analyse(results, n_boot=50)
    assert json.dumps(a1, sort_keys=True) == json.dumps(analyse(results, n_boot=50), sort_keys=True)
    assert a1["per_family"]["a"]["f"]["headline"] == 1.0
    assert a1["pooled"]["macro_recall"]["headline"]["n"] == 16


def test_downstream_study_is_deterministic_and_resumable(tmp_path, cache_dir):
    from eval.downstream import main

    data = tmp_path / "data"
    data.mkdir()
    with (data / "tiny.jsonl").open("w", encoding="utf-8") as handle:
        k = 0
        for intent, texts in INTENTS.items():
            for t in texts:
                handle.write(json.dumps({"id": k, "text": t, "intent": intent, "split": "train"}) + "\n")
                k += 1
        for t, intent in TEST:
            handle.write(json.dumps({"id": k, "text": t, "intent": intent, "split": "test"}) + "\n")
            k += 1
    out = tmp_path / "out"
    args = ["--data", str(data), "--datasets", "tiny", "--n", "8", "--reps", "1", "--boot", "10",
            "--out", str(out), "--markdown", str(tmp_path / "D.md"), "--cache-dir", str(cache_dir)]
    main(args)
    first = (out / "downstream.json").read_bytes()
    saved = json.loads(first)
    rows = saved["results"][0]["rows"]
    assert {r["family"] for r in rows} == {"intent_count", "head_collapse", "recursive_replace",
                                           "recursive_accumulate", "ngram_mislead", "contamination"}
    # more intents in the batch: more test intents covered, never fewer
    ic = sorted((r for r in rows if r["family"] == "intent_count"), key=lambda r: r["level"])
    assert [r["test_intents_covered"] for r in ic] == [r["level"] for r in ic]
    assert ic[0]["macro_recall"] <= 0.5 < ic[-1]["macro_recall"]
    assert "| tiny |" in (tmp_path / "D.md").read_text()
    main(args)  # resumed: the dataset is reused from the saved JSON
    assert (out / "downstream.json").read_bytes() == first
    # a metric added after the study ran is filled into the saved rows (no retraining): the same bytes
    older = json.loads(first)
    for row in older["results"][0]["rows"]:
        del row["vendi"], row["vendi_normalized"]
    (out / "downstream.json").write_text(json.dumps(older))
    main(args)
    assert (out / "downstream.json").read_bytes() == first
    (out / "downstream.json").unlink()
    main(args)  # recomputed from the cache: the same bytes
    assert (out / "downstream.json").read_bytes() == first
