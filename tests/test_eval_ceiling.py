"""The ceiling study (eval/ceiling.py): its bounds on toy studies, and CEILING.md matching the saved JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _toy_studies(tmp_path: Path) -> Path:
    """Two datasets: on `toy:a` only the shipped threshold orders the intent count right, on `toy:b` no
    setting does. Downstream recall rises with the level on both."""
    from eval.representations import GRID

    shipped = GRID.index(0.65)
    validation, downstream = {"results": []}, {"results": []}
    for name, sign_at_shipped in (("toy:a", 1), ("toy:b", -1)):
        vrows, drows = [], []
        for rep in (0, 1):
            for level in (2, 3, 5):
                scores = [level * (sign_at_shipped if i == shipped else -1) for i in range(len(GRID))]
                vrows.append({"family": "intent_count", "level": level, "truth": level, "rep": rep,
                              "views": {"text": {"scores": scores}}, "vendi": float(level), "distinct_2": -level})
                drows.append({"family": "intent_count", "level": level, "rep": rep, "macro_recall": level / 10,
                              "train_intents": level, "headline": scores[shipped], "vendi": float(level),
                              **{m: 0.0 for m in ("distinct_1", "distinct_2", "distinct_3", "distinct_4",
                                                  "self_bleu", "compression_ratio", "embedding_mean_cosine")},
                              "vendi_normalized": None})
        validation["results"].append({"dataset": name, "rows": vrows})
        downstream["results"].append({"dataset": name, "rows": drows})
    (tmp_path / "validation.json").write_text(json.dumps(validation))
    (tmp_path / "downstream.json").write_text(json.dumps(downstream))
    return tmp_path


def test_ceiling_finds_the_one_setting_that_reaches_the_bar_and_none_where_none_does(tmp_path: Path):
    from eval.ceiling import best_free, load, one_setting_for_all, render

    data = load(_toy_studies(tmp_path))
    by_name = {r["dataset"]: r for r in data["intent"]}
    a, b = by_name["toy:a"], by_name["toy:b"]
    assert a["shipped"] == pytest.approx(1.0) and a["ceiling"]["setting"] == "t=0.65"
    # every range averages the shipped threshold with others that order it backwards
    assert a["ceiling"]["reaching"] == 1 and a["ceiling"]["best"] == pytest.approx(1.0)
    assert b["ceiling"]["best"] == pytest.approx(-1.0) and b["ceiling"]["reaching"] == 0
    assert best_free(a) == ("vendi", pytest.approx(1.0))  # distinct_2 falls with the level here
    assert a["baselines"]["distinct_2"] == pytest.approx(1.0 * -1) and a["baselines"]["mauve"] is None
    assert a["llm_ceiling"] is None  # no LLM view was extracted
    assert one_setting_for_all(data["intent"], 0.95) == ("t=0.65", 1)

    down = {r["dataset"]: r for r in data["downstream"]}
    assert down["toy:a"]["shipped"] == pytest.approx(1.0) and down["toy:a"]["ceiling"]["best"] == pytest.approx(1.0)
    assert down["toy:b"]["shipped"] == pytest.approx(-1.0) and down["toy:b"]["ceiling"]["best"] == pytest.approx(-1.0)
    assert down["toy:b"]["oracle"] == pytest.approx(1.0)
    assert data["recursion"] == []  # no generator runs saved here

    page = render(data)
    assert "The shipped headline reaches the bar on 1 of 2 within-domain datasets." in page
    assert "Its ceiling is under the bar on 1 of them: toy:b (-1.00)." in page
    assert "nothing tuned, reach it on: vendi 2, distinct_1 0," in page
    assert "Single-domain datasets with the mode count's ceiling at the bar: 1 of 2" in page


def test_a_downstream_study_without_its_validation_twin_gives_no_ceiling(tmp_path: Path):
    from eval.ceiling import load

    folder = _toy_studies(tmp_path)
    validation = json.loads((folder / "validation.json").read_text())
    validation["results"] = validation["results"][:1]
    (folder / "validation.json").write_text(json.dumps(validation))
    assert [r["dataset"] for r in load(folder)["downstream"]] == ["toy:a"]


def test_committed_page_is_what_the_saved_json_gives(tmp_path: Path):
    from eval.ceiling import main

    page = main(["--markdown", str(tmp_path / "CEILING.md")])
    assert page == (REPO / "eval" / "CEILING.md").read_text()


def test_falling_settings_reads_every_step_from_round_zero():
    from eval.ceiling import falling_settings
    from eval.representations import GRID

    def rounds(*per_round: float) -> list[dict]:
        return [{"round": i, "n": 100, "scores": [v] * len(GRID)} for i, v in enumerate(per_round)]

    falls = falling_settings({"runs": {"down": rounds(0.3, 0.2, 0.1), "up_first": rounds(0.1, 0.3, 0.2),
                                       "flat": rounds(0.2, 0.2, 0.1)}})
    assert falls["t=0.65"] == {"down": True, "up_first": False, "flat": False}
    assert falls["multi=0.2-0.8"] == falls["t=0.65"]


def test_rescoring_a_generated_run_reproduces_its_saved_headline(cache):
    """The knob sweep over generated rounds recomputes, at the shipped threshold, exactly the headline
    the run saved (duplicates counted, as `clusterdiv score` counts them)."""
    from corpora import INTENT_TEMPLATES, intent_corpus

    from eval.ceiling import rescore_generated
    from eval.downstream import embed, headline_score
    from eval.representations import GRID

    rows = intent_corpus(list(INTENT_TEMPLATES)[:4], 30, seed=1)
    texts = [t for t, _ in rows] + [rows[0][0]] * 3  # a duplicate that piles up, as recursion makes
    vectors = dict(zip(sorted(set(texts)), embed(sorted(set(texts)), cache=cache), strict=True))
    saved, _ = headline_score(texts, vectors)
    run = {"batches": [{"regime": "recursive_replace", "round": 0, "headline": saved,
                        "examples": [[t, "x"] for t in texts]},
                       {"regime": "real", "round": None, "headline": 0.0, "examples": []}]}
    out = rescore_generated({"toy": run}, cache=cache)
    (only,) = out["runs"]["toy"]
    assert only["n"] == len(texts) and only["saved_headline"] == saved
    assert only["scores"][GRID.index(0.65)] == pytest.approx(saved, abs=1e-6)
    assert only["scores"][0] >= only["scores"][-1]  # finer cuts never find fewer modes


def test_lineage_ceiling_reads_the_best_percentile_within_the_false_flag_bar():
    from eval.ceiling import lineage_rows, lineage_section

    def per(**figures):  # percentile -> (recall, false flags)
        return {p.replace("_", "."): {"recall": r, "false": f} for p, (r, f) in figures.items()}

    sweep = {"seeds": [0], "datasets": {
        "toy:easy": {"group": "seen", "by_percentile": per(**{"90": (0.99, 0.10), "97": (0.95, 0.03), "99": (0.9, 0.0)})},
        "toy:hard": {"group": "fresh", "by_percentile": per(**{"90": (0.85, 0.12), "97": (0.70, 0.04), "99": (0.5, 0.0)})},
    }}
    rows = {r["dataset"]: r for r in lineage_rows(sweep)}
    assert rows["toy:easy"]["best"] == ("97", {"recall": 0.95, "false": 0.03})  # 90 flags too much real data
    assert rows["toy:easy"]["meets"] == {"90": False, "97": True, "99": True}
    assert not any(rows["toy:hard"]["meets"].values())
    page = "\n".join(lineage_section(list(rows.values())))
    assert "The shipped percentile meets the bar on 1 of 2 datasets" in page
    assert "No percentile meets it on 1: toy:hard (best within 5%: recall 0.70)" in page


def test_tail_ceiling_section_names_the_datasets_no_rule_of_the_grid_reaches():
    from eval.ceiling import tail_section

    rule = {"threshold": 0.5, "evidence_floor": 2}
    sweep = {"grid_size": 2, "seeds": "0,1", "one_for_all": {"setting": rule, "datasets": ["toy:easy"]},
             "datasets": {
                 "toy:easy": {"shipped": {"precision": 0.9, "recall": 1.0},
                              "best": {"precision": 0.9, "recall": 1.0, "setting": rule}},
                 "toy:hard": {"shipped": {"precision": 0.5, "recall": 1.0},
                              "best": {"precision": 0.7, "recall": 0.9, "setting": {**rule, "threshold": 0.6}}}}}
    page = "\n".join(tail_section(sweep))
    assert "| toy:hard | 0.50 / 1.00 | 0.70 / 0.90 | threshold 0.6, evidence_floor 2 |" in page
    assert "The shipped rule meets the target on 1 of 2 datasets" in page
    assert "on 1 (threshold 0.5, evidence_floor 2)" in page
    assert "No setting of the grid meets it on 1: toy:hard." in page
    assert tail_section(None) == []
