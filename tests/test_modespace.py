"""The mode space and the run context (issue 14): groups are a row field, a run owns its cache once."""

from __future__ import annotations

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.records import Example
from clusterdiv.llm.structured import LLMSettings
from clusterdiv.modes.config import ScoreConfig
from clusterdiv.modes.modespace import BATCH, REFERENCE, build_mode_space
from clusterdiv.modes.run import RunContext

CONFIG = ScoreConfig(llm=LLMSettings(model="fake/picky"), representation={"kind": "criteria"},
                     clustering={"method": "agglomerative"})


def examples(*texts: str) -> list[Example]:
    return [Example(id=f"x{i}", text=t) for i, t in enumerate(texts)]


def test_groups_are_a_field_and_the_same_id_lives_in_two_groups(cache, fake_llm):
    batch = examples("set an alarm for 6am", "set an alarm for noon", "play some jazz #junk")
    reference = examples("book a flight to lima", "set an alarm for 6am")  # ids x0, x1 again
    with RunContext(cache=cache) as run:
        space = build_mode_space({BATCH: batch, REFERENCE: reference}, CONFIG, run)
    assert space.groups == [BATCH, REFERENCE]
    assert [(r.group, r.example.id) for r in space.rows] == [
        (BATCH, "x0"), (BATCH, "x1"), (BATCH, "x2"), (REFERENCE, "x0"), (REFERENCE, "x1")]
    assert [r.example.id for r in space.failures()] == ["x2"] and space.failures(REFERENCE) == []
    assert not space.rows[2].clustered and all(r.clustered for r in space.rows if not r.failed)
    # the same text in both groups: one mode, one paid call, and each row keeps its own extraction id
    assert space.rows[0].mode == space.rows[4].mode
    assert space.rows[4].extraction.example_id == "x1"
    assert len(space.labels(BATCH)) == 2 and space.vectors().shape[0] == len(space.clustered()) == 4
    assert run.timings.extract_s > 0 and run.timings.cluster_s > 0
    # report ids are made at the edge, from the group field
    assert [a.example_id for a in space.assignments(lambda r: f"{r.group}:{r.example.id}")][-1] == "reference:x1"


def test_a_reused_space_is_not_asked_again(cache, fake_llm):
    batch = examples("set an alarm for 6am", "play some jazz music", "play some rock music")
    with RunContext(cache=cache) as run:
        alone = build_mode_space({BATCH: batch}, CONFIG, run)
        asked = run.stats.calls + run.stats.cache_hits
        both = build_mode_space({BATCH: batch, REFERENCE: examples("book a flight to lima")}, CONFIG, run,
                                reuse=alone)
    assert run.stats.calls + run.stats.cache_hits == asked + 1  # only the reference row
    assert [r.extraction.criteria for r in both.group_rows(BATCH)] == [r.extraction.criteria for r in alone.rows]


def test_a_run_opens_its_own_cache_lazily_and_closes_it_once_and_never_a_given_one(cache_dir, cache):
    with RunContext() as run:
        assert run._cache is None  # nothing asked for a model yet
        opened = run.cache
        assert run.cache is opened
    assert run._cache is None
    given = ModelCache(cache_dir / "given")
    with RunContext(cache=given) as run:
        assert run.cache is given
        with run.stage("load"):
            pass
    given.set("llm:probe", {"still": "open"})  # the caller's cache stays open
    assert given.get("llm:probe") == {"still": "open"}
    given.close()
    timings = run.finish()
    assert timings.load_s > 0 and timings.total_s >= timings.load_s and "load_s" in run.stage_seconds


def test_explore_reads_the_reports_space_and_runs_no_stage_again(cache, fake_llm):
    from clusterdiv.tasks.explore import explore

    texts = ["set an alarm for 6am", "set an alarm for noon", "play some jazz music", "play some rock music"]
    config = ScoreConfig(llm=LLMSettings(model="fake/echo"), metrics="none", bootstrap=5)
    exploration = explore(texts, config=config, cache=cache)
    # every text embedded once, by score: the explorer asked the cache for nothing again
    assert cache.hits["embedding"] == 0 and exploration.report.timings.embedding_calls == len(texts)
    assert [p.cluster for p in exploration.points] == [c for c in _labels(exploration)]


def _labels(exploration) -> list[int]:
    by_id = {i: c.cluster_id for c in exploration.report.clusters for i in c.example_ids}
    return [by_id[p.example_id] for p in exploration.points]
