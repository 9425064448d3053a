"""Mix budget: the ratios are arithmetic, so on a mix built by hand they must come out exact."""

from __future__ import annotations

import pytest
from corpora import intent_corpus

from clusterdiv.core.errors import InputError
from clusterdiv.core.records import Example
from clusterdiv.tasks.anchoring import mix_budget


def ex(i: int, text: str, source: str, label: str) -> Example:
    return Example(id=f"e{i}", text=text, label=label, meta={"source": source})


def known_mix() -> list[Example]:
    """6 real (2 tokens each) + 3 synthetic (4 tokens each); label b is all synthetic but one."""
    rows = [("a", "real")] * 4 + [("b", "real")] * 2 + [("b", "synthetic")] * 3
    out = []
    for i, (label, source) in enumerate(rows):
        text = "hello world" if source == "real" else "one two three four"
        out.append(ex(i, text, source, label))
    return out


def test_counts_and_token_shares_are_exact():
    report = mix_budget(known_mix(), label_field="label", target_real_share=0.5)
    mix = report.mix
    overall = mix["overall"]
    assert (overall["n"], overall["real"], overall["synthetic"]) == (9, 6, 3)
    assert overall["real_share"] == 6 / 9
    assert (overall["real_tokens"], overall["synthetic_tokens"]) == (12, 12)
    assert overall["real_token_share"] == 0.5
    groups = {g["group"]: g for g in mix["groups"]}
    assert groups["a"]["real_share"] == 1.0 and groups["a"]["flag"] == "real_only"
    assert groups["b"]["synthetic_share"] == 3 / 5 and groups["b"]["real_token_share"] == 4 / 16
    assert mix["status"] == "too_real" and mix["source_values"] == {"real": 6, "synthetic": 3}
    assert report.command == "mix" and report.n_input == 9 and report.score is None


def test_budget_says_how_to_reach_the_target():
    mix = mix_budget(known_mix(), label_field="label", target_real_share=0.8).mix
    # 6 real / 9: reaching 80% real needs 12 real for 3 synthetic (add 6), or at most 1 synthetic (drop 2)
    assert mix["status"] == "too_synthetic"
    assert mix["add_real_for_target"] == 6 and mix["drop_synthetic_for_target"] == 2
    on = mix_budget(known_mix(), label_field="label", target_real_share=0.65, tolerance=0.05).mix
    assert on["status"] == "on_target"


def test_synthetic_dominated_labels_are_warned_about():
    rows = [ex(i, f"text number {i}", "real" if i < 10 else "gpt-4o", "common" if i < 20 else "rare")
            for i in range(40)]
    rows += [ex(40, "one real rare example", "human", "rare")]
    mix = mix_budget(rows, label_field="label", dominance_threshold=0.8).mix
    groups = {g["group"]: g for g in mix["groups"]}
    assert groups["rare"]["flag"] == "synthetic_dominates" and groups["rare"]["synthetic_share"] == 20 / 21
    assert groups["common"]["flag"] == "ok" and mix["dominated"] == ["rare"]
    assert mix_budget(rows, label_field="label", dominance_threshold=0.96).mix["dominated"] == []


def test_without_labels_groups_are_shared_clusters(cache, fake_llm, embedder):
    real = [ex(i, t, "real", y) for i, (t, y) in enumerate(intent_corpus(["weather", "alarm"], 20, seed=1))]
    synth = [ex(100 + i, t, "synthetic", y)
             for i, (t, y) in enumerate(intent_corpus(["weather", "alarm", "music"], 28, seed=2))]
    mix = mix_budget(real + synth, model="fake/echo", embedding_model=embedder, cache=cache,
                     cluster_on="criteria").mix
    assert "semantic clusters" in mix["group_by"] and mix["n_groups"] >= 2
    assert sum(g["n"] for g in mix["groups"]) == 48  # < 50: the deterministic small-set clustering
    # music exists only in the synthetic half: some mode must be synthetic-only
    assert any(g["flag"] == "synthetic_only" for g in mix["groups"])


def test_missing_source_field_names_the_example():
    rows = known_mix() + [Example(id="nosrc", text="where from?", label="a")]
    with pytest.raises(InputError, match="'nosrc' has no 'source' field"):
        mix_budget(rows, label_field="label")
    with pytest.raises(InputError, match="within 0..1"):
        mix_budget(known_mix(), label_field="label", target_real_share=1.5)
