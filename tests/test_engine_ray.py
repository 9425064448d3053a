"""`--engine ray`: the same report as in-process, the cache kept by the driver, workers killed mid-run.

One local Ray cluster (2 CPUs, loopback, no dashboard) serves the whole module and is shut down
after it. The identity tests use the real bundled models (MiniLM for embedding, SmolLM2 under the
`criteria` representation for extraction) on fresh caches, so every answer is computed on the
cluster; the cache and failure tests use the fake LLM plugin, whose call log (written from the
worker processes) counts what the cluster was asked.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import ray
from typer.testing import CliRunner

from clusterdiv.cli import app
from clusterdiv.core.cache import ModelCache
from clusterdiv.engine import KILL_ONCE_ENV, EngineSettings
from clusterdiv.modes.config import ScoreConfig
from clusterdiv.modes.run import RunContext
from clusterdiv.tasks.score import score, score_run

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "what's the weather in paris tomorrow",
    "will it rain in oslo today",
    "set an alarm for 6am",
    "set an alarm for noon",
    "play some jazz music",
    "play some rock music",
    "book a flight to lima next friday",
    "book a flight to cairo next friday",
    "how do i cook pancakes",
    "tell me a joke about cats",
]


@pytest.fixture(scope="module")
def call_log(tmp_path_factory: pytest.TempPathFactory) -> Any:
    log = tmp_path_factory.mktemp("ray") / "calls.log"
    paths = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p),
                                       "FAKE_LLM_CALL_LOG": str(log)}})
    try:
        yield log
    finally:
        ray.shutdown()


def comparable(report: Any) -> dict[str, Any]:
    data = json.loads(report.model_dump_json())
    data.pop("timings")
    data["config"].pop("engine")
    return data


def assert_same_but_float_rounding(a: Any, b: Any, path: str = "report") -> None:
    """Equal everywhere, except that floats may differ in their last bits (relative 1e-6).

    A Ray actor runs torch with one thread (Ray sets OMP_NUM_THREADS=1) and the driver with every core.
    On CPUs whose float kernels split work by thread count (seen on an AVX-512 machine) MiniLM's vectors
    then differ by about 1e-7, and so do the embedding metrics computed from them; modes, counts and
    every string stay exactly the same.
    """
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), f"{path}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a.keys() ^ b.keys())}"
        for k in a:
            assert_same_but_float_rounding(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_but_float_rounding(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def run(texts: list[str], directory: Path, **config: Any) -> Any:
    with ModelCache(directory) as cache:
        return score(texts, config=ScoreConfig.model_validate(config), cache=cache)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_text_representation_same_report_as_in_process(call_log: Path, tmp_path: Path) -> None:
    local = run(TEXTS, tmp_path / "local")
    distributed = run(TEXTS, tmp_path / "ray", engine="ray")
    assert distributed.config.engine == "ray" and local.config.engine == "local"
    assert distributed.timings.embedding_calls == len(TEXTS)  # computed on the cluster, not read from a cache
    assert (distributed.n_modes, distributed.score_normalized) == (local.n_modes, local.score_normalized)
    assert_same_but_float_rounding(comparable(distributed), comparable(local))


def test_local_model_extraction_survives_a_killed_worker(call_log: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    texts = TEXTS[:4]
    settings = {"llm": {"model": "local/smollm2"}, "representation": {"kind": "criteria"}, "metrics": "none"}
    local = run(texts, tmp_path / "local", **settings)
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    # Two chunks of two; one worker (the model's threads would share 2 cores with a second one).
    engine = EngineSettings(name="ray", workers=1, extract_chunk=2)
    distributed = run(texts, tmp_path / "ray", engine=engine.model_dump(), **settings)
    assert marker.exists()  # one worker process exited while holding a chunk; Ray restarted it and retried
    assert distributed.timings.llm_calls >= len(texts)  # every example asked on the cluster, none cached
    assert distributed.n_input == len(texts) and distributed.failed.count == local.failed.count
    assert comparable(distributed) == comparable(local)


def test_only_cache_misses_go_to_the_cluster_and_results_are_cached(call_log: Path, tmp_path: Path) -> None:
    settings = {"llm": {"model": "fake/echo"}, "representation": {"kind": "criteria"}, "metrics": "none"}
    cache = tmp_path / "cache"
    run(TEXTS[:4], cache, **settings)  # in-process: 4 answers in the cache
    before = len(calls(call_log))
    first = run(TEXTS, cache, engine="ray", **settings)
    asked = calls(call_log)[before:]
    assert len(asked) == len(TEXTS) - 4  # each miss asked once, no hit asked again
    assert first.timings.llm_cache_hits == 4
    again = run(TEXTS, cache, engine="ray", **settings)  # the driver wrote every answer as it came back
    assert len(calls(call_log)) == before + len(asked)
    assert again.timings.llm_calls == 0 and again.timings.embedding_calls == 0
    assert comparable(again) == comparable(first) == comparable(run(TEXTS, tmp_path / "fresh", **settings))


def test_a_chunk_that_fails_for_good_is_recorded_as_failed(call_log: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KILL_ONCE_ENV, str(tmp_path / "killed"))
    engine = EngineSettings(name="ray", workers=2, max_retries=0, extract_chunk=4)  # no restart: the chunk is lost
    space_ids = {t: i for i, t in enumerate(TEXTS)}
    with ModelCache(tmp_path / "cache") as cache:
        result = score_run(TEXTS, config=ScoreConfig.model_validate(
            {"engine": engine.model_dump(), "llm": {"model": "fake/echo"}, "representation": {"kind": "criteria"},
             "metrics": "none"}), run=RunContext(cache=cache))
    report, space = result.report, result.space
    failed = {r.example_id for r in report.failed.reasons}
    clustered = [r.example.id for r in space.clustered()]
    # Ray may also fail chunks it had already handed to the dead actor (how many depends on timing):
    # whatever is lost is lost in whole chunks, and every lost example is recorded.
    chunks = [{r.example.id for r in space.rows if r.example.text in TEXTS[i:i + 4]} for i in range(0, len(TEXTS), 4)]
    assert failed and len(failed) == report.failed.count
    assert failed == set().union(*(c for c in chunks if c & failed))
    assert {r.reason for r in report.failed.reasons} == {"Ray task failed for good: its worker died on each of 1 attempts"}
    assert len(clustered) == len(set(clustered)) == report.n_samples  # none counted twice
    assert failed.isdisjoint(clustered) and len(failed) + len(clustered) == report.n_input == len(space_ids)


def test_cli_engine_options(call_log: Path, tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    common = ["score", str(data), "--model", "fake/echo", "--representation", "criteria", "--metrics", "none",
              "--format", "json", "--cache-dir", str(tmp_path / "cache"), "--no-record", "--no-progress"]
    local = CliRunner().invoke(app, common)
    assert local.exit_code == 0, local.output
    result = CliRunner().invoke(app, [*common, "--engine", "ray"])  # every answer cached: nothing to ship
    assert result.exit_code == 0, result.output
    ours, theirs = json.loads(result.stdout), json.loads(local.stdout)
    assert (ours["config"].pop("engine"), theirs["config"].pop("engine")) == ("ray", "local")
    ours.pop("timings"), theirs.pop("timings")
    assert ours == theirs
    bad = CliRunner().invoke(app, [*common, "--engine", "spark"])
    assert bad.exit_code == 2 and "unknown engine 'spark'" in bad.output
    stray = CliRunner().invoke(app, [*common, "--ray-address", "127.0.0.1:6379"])
    assert stray.exit_code == 2 and "ray engine" in stray.output


def test_a_service_job_runs_on_the_servers_engine_and_the_server_names_the_cluster() -> None:
    from pydantic import ValidationError

    from clusterdiv.core.errors import InputError
    from clusterdiv.service.execute import score_config
    from clusterdiv.service.schemas import JobOptions
    from clusterdiv.service.settings import ServiceSettings

    settings = ServiceSettings(ray_address="10.0.0.5:6379")
    cluster = EngineSettings(name="ray", address="10.0.0.5:6379")
    assert score_config(JobOptions(engine="ray"), settings).engine == cluster
    assert score_config(JobOptions(), settings).engine == cluster  # issue 30: the server's engine, always
    with pytest.raises(InputError, match="not this server's engine"):
        score_config(JobOptions(engine="local"), settings)
    assert score_config(JobOptions(), ServiceSettings()).engine == EngineSettings()  # no cluster: the worker
    with pytest.raises(InputError, match="started without a Ray cluster"):  # it would start Ray in the server
        score_config(JobOptions(engine="ray"), ServiceSettings())
    with pytest.raises(ValidationError):
        JobOptions.model_validate({"engine": "spark"})
    with pytest.raises(ValidationError):  # a client never names the cluster
        JobOptions.model_validate({"engine": "ray", "ray_address": "evil:6379"})
