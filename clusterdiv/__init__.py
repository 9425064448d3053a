"""clusterdiv: measure the diversity of text datasets by LLM semantic clustering."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from clusterdiv.report import Report

_LLM_KEYS = {"model", "temperature", "max_tokens", "max_attempts", "timeout", "api_base", "concurrency",
             "max_input_chars"}


def score(data: Any, **config: Any) -> Report:
    """Score a path, a list of texts or Examples: `clusterdiv.score("data.jsonl", model=..., seed=1)`.

    Keyword arguments are ScoreConfig fields; LLM settings (`model`, `api_base`, `concurrency`, ...)
    may be given flat. `cache=`, `reference=`, `load_options=` and `progress=` pass through.
    Imports are deferred so `import clusterdiv` stays cheap.
    """
    from clusterdiv.llm.structured import LLMSettings
    from clusterdiv.pipeline import ScoreConfig
    from clusterdiv.pipeline import score as run_score

    passthrough = {k: config.pop(k) for k in ("cache", "reference", "reference_load_options", "load_options",
                                               "progress") if k in config}
    llm = {k: config.pop(k) for k in list(config) if k in _LLM_KEYS}
    if "seed" in config:
        llm.setdefault("seed", config["seed"])
    settings = ScoreConfig(llm=LLMSettings(**llm), **config)
    return run_score(data, config=settings, **passthrough)


__all__ = ["__version__", "score"]
