"""compare's long steps report progress, and its Vendi permutation test is faster at the same p-values
(issue 32's compare row). The implementation before the change is kept in eval/bench_compare_vendi.py
as the reference the p-values are checked against; the CLI runs with stderr a pipe (plain progress
lines, CLUSTERDIV_PROGRESS_SECONDS=0 so every chunk prints one) and the service job records the stages."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from corpora import intent_corpus
from service_server import ServerProcess, wait_for_job
from test_cli import run_cli, write_jsonl

from clusterdiv.metrics.semantic import vendi_permutation_p_value
from eval.bench_compare_vendi import before_vendi_permutation_p_value

PERMUTATIONS = 120  # not a multiple of the chunk (32) nor of the modes test's progress step (50)
WIDE = ["weather", "alarm", "music", "joke"]


def _batches(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, d))
    wide = centres[rng.integers(0, 8, size=n)] + 0.8 * rng.normal(size=(n, d))
    narrow = centres[rng.integers(0, 3, size=n)] + 0.8 * rng.normal(size=(n, d))
    return wide, narrow


@pytest.mark.parametrize(("n", "d"), [(40, 64), (50, 16)])  # blocks of the pooled Gram; the d x d kernels
@pytest.mark.parametrize("workers", [1, 3])
def test_the_vendi_test_gives_the_p_values_of_the_implementation_before(n, d, workers):
    for seed, (a, b) in enumerate([_batches(n, d, 1), _batches(n, d, 2)[::-1], (_batches(n, d, 3)[0],
                                                                                 _batches(n, d, 4)[0])]):
        before = before_vendi_permutation_p_value(a, b, permutations=PERMUTATIONS, seed=seed)
        told: list[int] = []
        now = vendi_permutation_p_value(a, b, permutations=PERMUTATIONS, seed=seed, workers=workers,
                                        progress=told.append)
        assert now[1] == before[1]
        assert now[0] == pytest.approx(before[0], rel=1e-12)
        assert sum(told) == PERMUTATIONS and len(told) == -(-PERMUTATIONS // 32)


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("issue32_compare")
    wide = [{"id": f"w{i}", "text": t} for i, (t, _) in enumerate(intent_corpus(WIDE, 40, seed=1))]
    narrow = [{"id": f"n{i}", "text": t} for i, (t, _) in enumerate(intent_corpus(WIDE[:1], 40, seed=2))]
    return {"wide": write_jsonl(root / "wide.jsonl", wide), "narrow": write_jsonl(root / "narrow.jsonl", narrow)}


@pytest.fixture(scope="module")
def cli_run(batches, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("issue32_cli")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
               CLUSTERDIV_CACHE_DIR=str(root / "cache"), CLUSTERDIV_PROGRESS_SECONDS="0")
    result = run_cli(["compare", str(batches["wide"]), str(batches["narrow"]), "--metrics", "vendi",
                      "--permutations", str(PERMUTATIONS), "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    return result


def _stage_lines(stderr: str, stage: str) -> list[tuple[int, int]]:
    return [(int(m[1]), int(m[2])) for m in re.finditer(rf"^{stage} (\d+)/(\d+) \(\d+%\)", stderr, re.M)]


def test_compare_off_a_terminal_prints_progress_lines_for_both_permutation_tests(cli_run):
    for stage in ("modes test", "vendi test"):
        seen = _stage_lines(cli_run.stderr, stage)
        assert seen and seen[-1] == (PERMUTATIONS, PERMUTATIONS), (stage, cli_run.stderr)  # one pair
        assert len(seen) > 1 and [d for d, _ in seen] == sorted(d for d, _ in seen)  # alive while it runs
    assert _stage_lines(cli_run.stderr, "metrics")[-1] == (2, 2)


def test_the_reported_vendi_test_is_the_one_of_the_implementation_before(cli_run, batches):
    from clusterdiv.modes.embed import Embedder

    report = json.loads(cli_run.stdout)
    (pair,) = report["vendi_pairwise"]
    embedder = Embedder()
    texts = {name: [json.loads(line)["text"] for line in path.read_text().splitlines()]
             for name, path in batches.items()}
    assert report["sample_size"] == len(texts["wide"])  # every row compared, in file order
    sampled = {b["name"]: b for b in report["batches"]}
    vectors = {name: np.asarray(embedder.encode(t)) for name, t in texts.items()}
    difference, p = before_vendi_permutation_p_value(vectors[pair["a"]], vectors[pair["b"]],
                                                     permutations=PERMUTATIONS, seed=report["seed"])
    assert pair["p_value"] == p
    assert pair["difference"] == pytest.approx(difference, rel=1e-6)
    assert sampled["wide"]["vendi_rank"] == 1


def test_a_service_compare_job_records_the_test_stages(batches, tmp_path_factory):
    texts = {name: [json.loads(line)["text"] for line in path.read_text().splitlines()]
             for name, path in batches.items()}
    proc = ServerProcess(tmp_path_factory.mktemp("issue32_service"), args=["--workers", "1"]).start()
    try:
        with proc.client() as client:
            job = client.post("/v1/jobs", json={"kind": "compare", "batches": texts, "permutations": PERMUTATIONS,
                                                "options": {"metrics": "vendi", "bootstrap": 50}}).json()
            done = wait_for_job(client, job["id"])
            assert done["status"] == "succeeded", done
            stages = done["progress"]["stages"]
            for stage in ("modes test", "vendi test"):
                assert stages[stage] == {"done": PERMUTATIONS, "total": PERMUTATIONS}
            report = client.get(f"/v1/jobs/{job['id']}/report").json()
            assert len(report["vendi_pairwise"]) == 1
    finally:
        proc.stop()
