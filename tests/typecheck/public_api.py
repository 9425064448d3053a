"""Typed use of the public API (`clusterdiv/__init__.py`'s names), checked by mypy in tests/test_typed_api.py.
Never run: it only has to type-check, the way a user's typed code that imports clusterdiv does."""

from __future__ import annotations

import clusterdiv
from clusterdiv import ClusterParams, LLMSettings, Report, Representation, RunConfig, ScoreConfig


def score_texts(texts: list[str]) -> tuple[float | None, int, str]:
    config = ScoreConfig(llm=LLMSettings(model="local/smollm2"), seed=1)
    report: Report = clusterdiv.score(texts, config=config)
    run: RunConfig | None = report.config
    return report.score_normalized, report.n_input, run.model if run is not None else ""


def settings() -> tuple[ClusterParams, Representation, str]:
    return ClusterParams(), Representation(), clusterdiv.__version__
