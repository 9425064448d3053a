"""Issue 17 in the service: `select` and `seeds` job kinds (executed as the worker executes them)."""

from __future__ import annotations

import pytest
from corpora import intent_corpus
from pydantic import TypeAdapter, ValidationError

from clusterdiv.service.schemas import JobRequest


def _request(body: dict):
    return TypeAdapter(JobRequest).validate_python(body)


def test_select_and_seeds_jobs(cache):
    from clusterdiv.service.execute import execute_job
    from clusterdiv.service.settings import ServiceSettings

    settings = ServiceSettings()
    batch = [t for t, _ in intent_corpus(["weather", "alarm"], 30, seed=1) + intent_corpus(["joke"], 3, seed=2)]
    # 20 real examples an intent: with 5 (25 in all) no absence is significant across the modes (modes.shares)
    reference = [t for t, _ in intent_corpus(["weather", "alarm", "joke", "music", "flight"], 100, seed=3)]
    sel = execute_job(_request({"kind": "select", "texts": batch, "budget": 8, "reference": reference}),
                      job_id="j1", settings=settings, cache=cache, progress=None)
    assert sel.result["n_selected"] <= 8 and len(sel.result["selected"]) == sel.result["n_selected"]
    assert {s["text"] for s in sel.result["selected"]} <= set(batch)
    assert "before" in sel.markdown and "after" in sel.markdown
    seeds = execute_job(_request({"kind": "seeds", "texts": batch, "reference": reference, "per_mode": 2}),
                        job_id="j2", settings=settings, cache=cache, progress=None)
    emitted = [s["text"] for m in seeds.result["modes"] for s in m["seeds"]]
    assert emitted and set(emitted) <= set(reference) and not set(emitted) & set(batch)
    assert seeds.result["n_missing"] >= 1 and seeds.result["reference_share_lacking"] > 0.15


def test_job_validation():
    with pytest.raises(ValidationError):
        _request({"kind": "select", "texts": ["a"], "budget": 0})
    with pytest.raises(ValidationError):
        _request({"kind": "seeds", "texts": ["a"]})  # seeds need real data
