"""Coverage by label (issue 31 item 3): a classifier fitted on the reference's labels says which real labels
a batch lacks, tested as the modes are. The library on vectors whose truth is known, then the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from corpora import intent_corpus
from test_cli import run_cli, write_jsonl

from clusterdiv.core.errors import InputError
from clusterdiv.modes.labels import fit_labels, label_coverage


def _draw(rng: np.random.Generator, centres: np.ndarray, labels: list[int], n: int, noise: float):
    y = rng.choice(labels, n)
    x = centres[y] + noise * rng.normal(size=(n, centres.shape[1]))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def _coverage(xb, xr, yr, alpha=0.05):
    names = [f"L{v}" for v in yr]
    fit = fit_labels(xb, xr, names, label_field="intent")
    return label_coverage(fit, batch_ids=[f"b{i}" for i in range(len(xb))],
                          reference_ids=[f"r{i}" for i in range(len(xr))], label_field="intent", alpha=alpha)


def test_removed_labels_are_flagged_and_kept_ones_are_not():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 24))
    xr, yr = _draw(rng, centres, list(range(8)), 400, 0.5)
    xb, _ = _draw(rng, centres, [0, 1, 2, 3, 4, 5], 400, 0.5)  # L6 and L7 removed
    section = _coverage(xb, xr, yr)
    assert sorted(section.lacking) == ["L6", "L7"]
    assert {s.label: s.flag for s in section.labels}["L6"] == "missing"
    assert section.classifier in section.candidates and section.cv_macro_f1 > 0.9
    assert "2 lacking" not in section.line() and "lacking 2: L" in section.line()


def test_confusion_between_neighbours_alone_flags_nothing():
    """Two labels the embedding cannot tell apart: the classifier mixes them, in the batch and in the
    reference's out-of-fold predictions alike, so a batch drawn like the reference has nothing lacking."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 24))
    centres[5] = centres[4] + 0.05 * rng.normal(size=24)  # L4 and L5 overlap
    xr, yr = _draw(rng, centres, list(range(6)), 300, 0.5)
    xb, _ = _draw(rng, centres, list(range(6)), 300, 0.5)
    section = _coverage(xb, xr, yr)
    assert section.lacking == []
    assert section.cv_macro_f1 < 0.95  # the confusion is visible in the reported score


def test_one_label_is_refused():
    x = np.eye(4, dtype=float)
    with pytest.raises(InputError, match="at least 2 labels"):
        fit_labels(x, x, ["a"] * 4, label_field="intent")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("labels")
    ref = [{"id": f"r{i}", "text": t, "intent": y}
           for i, (t, y) in enumerate(intent_corpus(["weather", "music", "joke", "alarm", "timer"], 60, seed=3))]
    batch = [{"id": f"b{i}", "text": t} for i, (t, y) in enumerate(intent_corpus(["weather", "music", "joke"], 45, seed=4))]
    return write_jsonl(d / "batch.jsonl", batch), write_jsonl(d / "ref.jsonl", ref)


def test_score_reports_coverage_by_label(files, subprocess_env):
    batch, ref = files
    args = ["score", str(batch), "--reference", str(ref), "--reference-label-field", "intent", "--no-record",
            "--metrics", "none"]
    js = run_cli([*args, "--format", "json"], subprocess_env)
    assert js.returncode == 0, js.stderr
    section = json.loads(js.stdout)["label_coverage"]
    assert sorted(section["lacking"]) == ["alarm", "timer"]
    assert section["n_labels"] == 5 and section["label_field"] == "intent"
    table = run_cli(args, subprocess_env)
    assert table.returncode == 0, table.stderr
    assert "3 of 5 real labels covered" in " ".join(table.stdout.split())


def test_seeds_by_label_writes_one_line_per_lacking_label_of_that_label(files, subprocess_env, tmp_path):
    batch, ref = files
    out = tmp_path / "seeds.jsonl"
    r = run_cli(["seeds", str(batch), "--reference", str(ref), "--reference-label-field", "intent",
                 "--per-mode", "3", "--id-field", "id", "--out", str(out)], subprocess_env)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["label"] for line in lines) == ["alarm", "timer"]
    intent_of = {row["id"]: row["intent"] for row in map(json.loads, ref.read_text().splitlines())}
    for line in lines:
        assert line["seeds"] and all(intent_of[s["id"]] == line["label"] for s in line["seeds"])
    assert "real labels covered" in r.stderr


def test_a_reference_without_the_label_field_is_a_one_line_error(files, subprocess_env, tmp_path):
    batch, _ = files
    ref = write_jsonl(tmp_path / "unlabelled.jsonl", [{"id": f"u{i}", "text": t} for i, (t, _y) in
                                                      enumerate(intent_corpus(["weather", "music"], 12))])
    r = run_cli(["score", str(batch), "--reference", str(ref), "--reference-label-field", "intent", "--no-record",
                 "--metrics", "none"], subprocess_env)
    assert r.returncode == 2, r.stderr
    assert "intent" in r.stderr and len([line for line in r.stderr.splitlines() if "error" in line.lower()]) == 1
