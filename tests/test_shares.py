"""Issue 31: lacking-mode flags with a test (`clusterdiv.modes.shares`), unit by unit and through the CLI.

The test itself against known cases (Fisher's exact test, its binomial limit, Benjamini-Hochberg),
the flags it gives (a tiny absent mode is `untestable`, a big one `missing`), and `seeds` / `score`
through the real CLI with `--alpha`: the text representation (MiniLM, no LLM call).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from corpora import intent_corpus
from scipy.stats import binomtest, false_discovery_control, fisher_exact
from typer.testing import CliRunner

from clusterdiv.cli import app
from clusterdiv.core.errors import InputError
from clusterdiv.modes.shares import (
    cluster_shares,
    excess_p_values,
    lacking_p_values,
    shares_section,
    smallest_lacking_p,
)
from clusterdiv.reports.coverage import coverage_line


def _labels(batch: dict[int, int], ref: dict[int, int], *, batch_noise: int = 0, ref_noise: int = 0):
    """(labels, is_batch, ids) for per-mode counts of batch and reference (noise rows: -1)."""
    labels, is_batch = [], []
    for counts, flag, noise in ((batch, True, batch_noise), (ref, False, ref_noise)):
        for mode, n in counts.items():
            labels += [mode] * n
            is_batch += [flag] * n
        labels += [-1] * noise
        is_batch += [flag] * noise
    return labels, is_batch, [f"x{i}" for i in range(len(labels))]


def _by_mode(rows):
    return {r.cluster_id: r for r in rows}


# ---------------------------------------------------------------- the test itself


def test_lacking_p_value_is_fishers_exact_lower_tail_with_a_closed_form_at_zero():
    # b = 0 of a mode of r reference examples: P = C(n_r, r) / C(n_b + n_r, r), all r draws from the reference
    for n_b, n_r, r in ((100, 100, 10), (400, 300, 6), (50, 200, 3)):
        closed = math.comb(n_r, r) / math.comb(n_b + n_r, r)
        assert lacking_p_values([0], [r], n_b, n_r)[0] == pytest.approx(closed, rel=1e-9)
        assert smallest_lacking_p([r], n_b, n_r)[0] == pytest.approx(closed, rel=1e-9)
    for b, r, n_b, n_r in ((3, 20, 400, 300), (10, 12, 100, 100), (0, 1, 400, 300), (7, 7, 60, 40)):
        fisher = fisher_exact([[b, n_b - b], [r, n_r - r]], alternative="less").pvalue
        assert lacking_p_values([b], [r], n_b, n_r)[0] == pytest.approx(fisher, rel=1e-9)
        upper = fisher_exact([[b, n_b - b], [r, n_r - r]], alternative="greater").pvalue
        assert excess_p_values([b], [r], n_b, n_r)[0] == pytest.approx(upper, rel=1e-9)


def test_the_binomial_two_rates_test_is_the_small_share_limit_and_more_conservative():
    """b | b + r ~ Bin(m, n_b / (n_b + n_r)) (the exact test of two Poisson rates) is what the exact test of
    fixed-size sets tends to when the mode is a small share of both; otherwise its p-values are larger."""
    n_b, n_r = 200_000, 150_000
    for b, r in ((0, 8), (2, 15), (5, 20)):
        binom = binomtest(b, b + r, n_b / (n_b + n_r), alternative="less").pvalue
        assert lacking_p_values([b], [r], n_b, n_r)[0] == pytest.approx(binom, rel=2e-3)
    n_b, n_r = 400, 300
    for b, r in ((0, 6), (3, 20), (10, 40), (30, 60)):
        binom = binomtest(b, b + r, n_b / (n_b + n_r), alternative="less").pvalue
        assert lacking_p_values([b], [r], n_b, n_r)[0] < binom


# ---------------------------------------------------------------- the flags


def test_a_tiny_absent_mode_is_untestable_and_a_big_absent_one_missing():
    # batch 400, reference 300 (the sizes): one reference example absent from the batch is chance
    labels, is_batch, ids = _labels({0: 200, 1: 200}, {0: 140, 1: 130, 2: 1, 3: 29})
    rows = _by_mode(cluster_shares(labels, is_batch, ids))
    tiny, big = rows[2], rows[3]
    assert tiny.flag == "untestable" and tiny.q_value is None
    assert tiny.p_value == pytest.approx(300 / 700)  # the smallest it could ever reach: above any level
    assert big.flag == "missing" and big.batch_count == 0 and big.q_value is not None and big.q_value <= 0.05
    assert rows[0].flag == rows[1].flag == "balanced"
    section = shares_section(list(rows.values()), method="m", n_batch=400, n_reference=300, n_clusters=4, alpha=0.05)
    assert section.untestable == [2] and section.under_covered == [3] and section.alpha == 0.05
    line = coverage_line(section)
    assert line is not None and "2 of 4 real modes covered, 1 lacking (1 missing, 0 under-covered, false discovery " \
        "rate 0.05), 1 too small to test" in line
    assert "the 1 too small to test 0.3%" in line


def test_the_old_ratio_rule_flags_chance_the_test_does_not():
    """Three modes of 2 reference examples each, absent from the batch: ratio 0, `missing` under the old rule;
    at these sizes P(absent by chance) = C(300, 2) / C(700, 2) = 0.18 each: untestable."""
    labels, is_batch, ids = _labels({0: 400}, {0: 294, 1: 2, 2: 2, 3: 2})
    rows = _by_mode(cluster_shares(labels, is_batch, ids))
    assert [rows[m].flag for m in (1, 2, 3)] == ["untestable"] * 3
    assert rows[1].p_value == pytest.approx(math.comb(300, 2) / math.comb(700, 2))


def test_benjamini_hochberg_across_the_testable_modes_only():
    """Modes 1-3 are each under-covered at raw p 0.024-0.028 (below 0.05), but they sit among 12 modes the
    batch covers as expected: after the correction they are not flagged. Mode 4 (none of 20) stays missing;
    mode 5 (one real example) is untestable and out of the family."""
    balanced = dict.fromkeys(range(10, 20), 20), dict.fromkeys(range(10, 20), 15)
    labels, is_batch, ids = _labels({0: 175, 1: 4, 2: 8, 3: 13, **balanced[0]},
                                    {0: 84, 1: 10, 2: 15, 3: 20, 4: 20, 5: 1, **balanced[1]})
    rows = _by_mode(cluster_shares(labels, is_batch, ids, alpha=0.05))
    family = [m for m in sorted(rows) if m != 5]
    q = false_discovery_control([rows[m].p_value for m in family], method="bh")
    assert [rows[m].q_value for m in family] == pytest.approx(list(q))
    assert rows[5].q_value is None and rows[5].flag == "untestable"
    assert all(0.02 < rows[m].p_value < 0.03 and rows[m].q_value > 0.05 for m in (1, 2, 3))
    assert [rows[m].flag for m in (1, 2, 3)] == ["balanced"] * 3  # the correction is applied, not only computed
    assert rows[4].flag == "missing"
    # beside one other mode (a family of two) a deficit of that size is flagged: p 0.013, q 0.026
    alone, alone_batch, alone_ids = _labels({0: 397, 1: 3}, {0: 290, 1: 10})
    row = _by_mode(cluster_shares(alone, alone_batch, alone_ids))[1]
    assert row.flag == "under" and row.q_value == pytest.approx(2 * row.p_value)


def test_over_stays_the_ratio_rule_with_its_evidence_recorded():
    # mode 1: 4 in the batch vs 1 real (3x, weak evidence); mode 2: 120 vs 20 (collapse); 9: no real example
    labels, is_batch, ids = _labels({0: 270, 1: 4, 2: 120, 9: 6}, {0: 279, 1: 1, 2: 20})
    rows = _by_mode(cluster_shares(labels, is_batch, ids))
    assert rows[1].flag == rows[2].flag == "over"
    assert rows[1].q_over is None or rows[1].q_over > 0.05  # recorded: the reader sees how thin mode 1 is
    assert rows[2].q_over is not None and rows[2].q_over < 1e-6
    assert rows[9].flag == "batch_only" and rows[9].p_value is None
    # a tiny mode held at its share is balanced, not untestable: it is in no doubt of being lacking
    tiny, tiny_batch, tiny_ids = _labels({0: 398, 1: 2}, {0: 299, 1: 1})
    assert _by_mode(cluster_shares(tiny, tiny_batch, tiny_ids))[1].flag == "balanced"


@pytest.mark.parametrize("alpha", [0, -0.1, 0.6, 1, float("nan"), True, "0.05"])
def test_a_level_outside_the_open_interval_is_refused(alpha):
    labels, is_batch, ids = _labels({0: 5}, {0: 5})
    with pytest.raises(InputError, match="alpha must be a level"):
        cluster_shares(labels, is_batch, ids, alpha=alpha)


# ---------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def lacking_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A batch of four intents; real data with those, a big intent the batch lacks (translate, 40) and a tiny
    one (joke, 2 examples): the big one is missing, the tiny one can only be untestable. (Both share no
    template filler with the batch's intents: "flight" shares the city names with "weather" and mixes.)"""
    root = tmp_path_factory.mktemp("shares")
    batch = [{"id": f"b{i}", "text": t} for i, (t, _) in
             enumerate(intent_corpus(["weather", "alarm", "transfer", "recipe"], 160, seed=1))]
    real = intent_corpus(["weather", "alarm", "transfer", "recipe"], 80, seed=2) + intent_corpus(["translate"], 40, seed=3)
    real += intent_corpus(["joke"], 2, seed=4)
    reference = [{"id": f"r{i}", "text": t, "intent": it} for i, (t, it) in enumerate(real)]
    for name, rows in (("batch", batch), ("real", reference)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"batch": root / "batch.jsonl", "reference": root / "real.jsonl", "rows": reference}  # type: ignore[dict-item]


def test_seeds_cli_seeds_the_missing_intent_and_never_the_untestable_one(lacking_data, subprocess_env, tmp_path):
    out = tmp_path / "seeds.jsonl"
    result = CliRunner().invoke(app, ["seeds", str(lacking_data["batch"]), "--reference", str(lacking_data["reference"]),
                                      "--id-field", "id", "--per-mode", "3", "--alpha", "0.05", "--out", str(out),
                                      "--no-progress"], env=subprocess_env)
    assert result.exit_code == 0, result.output
    intent = {r["id"]: r["intent"] for r in lacking_data["rows"]}
    modes = [json.loads(line) for line in out.read_text().splitlines()]
    seeded = {intent[s["id"]] for m in modes for s in m["seeds"]}
    assert "translate" in seeded and "joke" not in seeded
    assert all(m["flag"] in ("missing", "under") for m in modes)
    assert any(m["flag"] == "missing" and {intent[s["id"]] for s in m["seeds"]} == {"translate"} for m in modes)
    assert "false discovery rate 0.05" in result.output and "too small to test" in result.output


def test_score_cli_states_the_level_and_the_untestable_modes(lacking_data, subprocess_env):
    runner = CliRunner()
    args = ["score", str(lacking_data["batch"]), "--reference", str(lacking_data["reference"]), "--metrics", "none",
            "--no-record", "--no-progress"]
    result = runner.invoke(app, [*args, "--format", "json", "--alpha", "0.01"], env=subprocess_env)
    assert result.exit_code == 0, result.output
    shares = json.loads(result.stdout)["metrics"]["cluster_shares"]
    assert shares["alpha"] == 0.01 and "false discovery rate 0.01" in shares["flag_test"]
    by_id = {c["cluster_id"]: c for c in shares["clusters"]}
    absent = [c for c in shares["clusters"] if c["batch_count"] == 0 and c["reference_count"] >= 10]
    assert absent and all(c["flag"] == "missing" and c["q_value"] <= 0.01 for c in absent)
    small = [c for c in shares["clusters"] if 0 < c["reference_count"] <= 2 and c["batch_count"] == 0]
    assert small and all(c["flag"] == "untestable" and c["q_value"] is None for c in small)
    assert sorted(shares["untestable"]) == sorted(i for i, c in by_id.items() if c["flag"] == "untestable")
    markdown = runner.invoke(app, [*args, "--format", "markdown"], env=subprocess_env)
    assert markdown.exit_code == 0, markdown.output
    assert "false discovery rate 0.05" in markdown.stdout and "too small to test" in markdown.stdout


@pytest.mark.parametrize("value", ["0", "0.7", "nan", "often"])
def test_a_bad_alpha_is_exit_2_with_one_line(lacking_data, subprocess_env, value):
    result = CliRunner().invoke(app, ["seeds", str(lacking_data["batch"]), "--reference",
                                      str(lacking_data["reference"]), "--alpha", value], env=subprocess_env)
    assert result.exit_code == 2
    assert "--alpha" in result.output


def test_every_command_that_flags_modes_takes_alpha():
    for command in (["score"], ["check"], ["compare"], ["explore"], ["seeds"], ["select"], ["drift"]):
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "--alpha" in result.output, command
