"""clusterdiv: measure the diversity of text datasets.

The public API, all importable from here::

    import clusterdiv
    report = clusterdiv.score("data.jsonl")                   # or a list of texts/dicts, a DataFrame, a Dataset
    clusterdiv.compare({"gen-a": "a.jsonl", "gen-b": "b.jsonl"})
    clusterdiv.explore(texts)                                 # the explorer's document
    clusterdiv.audit_tail(batch, spec="tail.yaml"); clusterdiv.mix(mix_file)
    clusterdiv.lineage(batch, against=[older]); clusterdiv.drift(batch, real)
    clusterdiv.load_examples(df, text_field="prompt")         # what every call above accepts

``Report`` is the result type; ``ScoreConfig``, ``LLMSettings``, ``ClusterParams`` and
``Representation`` configure a run. Everything is imported on first use (PEP 562), so
``import clusterdiv`` imports no torch, litellm or scikit-learn.

The packages below follow the data flow, bottom to top (docs/ARCHITECTURE.md): ``core`` (records,
errors, cache), ``io`` (input formats), ``llm`` and ``engine`` (model calls and where they run),
``modes`` (extract -> embed -> cluster -> score, the mode space), ``metrics``, ``reports``, ``tasks``
(score, compare, explore, anchoring, actions), ``history``, ``service`` and ``cli``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from clusterdiv.io.corpus import load_examples
    from clusterdiv.llm.structured import LLMSettings
    from clusterdiv.modes.cluster import ClusterParams
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.modes.represent import Representation
    from clusterdiv.reports.report import Report, RunConfig
    from clusterdiv.tasks.anchoring.drift import drift
    from clusterdiv.tasks.anchoring.lineage import check_lineage as lineage
    from clusterdiv.tasks.anchoring.mix import mix_budget as mix
    from clusterdiv.tasks.anchoring.tail import audit_tail
    from clusterdiv.tasks.compare import ComparisonReport
    from clusterdiv.tasks.explore.model import Exploration

# public name -> (module, attribute), imported on first access
_LAZY: dict[str, tuple[str, str]] = {
    "audit_tail": ("clusterdiv.tasks.anchoring.tail", "audit_tail"),
    "mix": ("clusterdiv.tasks.anchoring.mix", "mix_budget"),
    "lineage": ("clusterdiv.tasks.anchoring.lineage", "check_lineage"),
    "drift": ("clusterdiv.tasks.anchoring.drift", "drift"),
    "load_examples": ("clusterdiv.io.corpus", "load_examples"),
    "Report": ("clusterdiv.reports.report", "Report"),
    "RunConfig": ("clusterdiv.reports.report", "RunConfig"),
    "ScoreConfig": ("clusterdiv.modes.config", "ScoreConfig"),
    "LLMSettings": ("clusterdiv.llm.structured", "LLMSettings"),
    "ClusterParams": ("clusterdiv.modes.cluster", "ClusterParams"),
    "Representation": ("clusterdiv.modes.represent", "Representation"),
}

_LLM_KEYS = {"model", "temperature", "max_tokens", "max_attempts", "timeout", "api_base", "concurrency",
             "max_input_chars"}


def _accepted(data: Any, load_options: dict[str, Any] | None) -> Any:
    """Paths, texts and Examples as they are; records, DataFrames and Datasets as a loaded corpus."""
    from pathlib import Path

    from clusterdiv.io.corpus import LoadedCorpus, to_corpus

    if data is None or isinstance(data, (str, Path, LoadedCorpus)):
        return data
    return to_corpus(data, **(load_options or {}))


def score(data: Any, **config: Any) -> Report:
    """Score a dataset: `clusterdiv.score("data.jsonl", seed=1)` (any input `load_examples` accepts).

    Keyword arguments are ScoreConfig fields; LLM settings (`model`, `api_base`, `concurrency`, ...)
    may be given flat. `cache=`, `reference=`, `load_options=` and `progress=` pass through.
    """
    from clusterdiv.llm.structured import LLMSettings
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.tasks.score import score as run_score

    passthrough = {k: config.pop(k) for k in ("cache", "reference", "reference_load_options", "load_options",
                                               "progress") if k in config}
    llm = {k: config.pop(k) for k in list(config) if k in _LLM_KEYS}
    if "seed" in config:
        llm.setdefault("seed", config["seed"])
    settings = ScoreConfig(llm=LLMSettings(**llm), **config)
    data = _accepted(data, passthrough.get("load_options"))
    if passthrough.get("reference") is not None:
        passthrough["reference"] = _accepted(passthrough["reference"], passthrough.get("reference_load_options"))
    return run_score(data, config=settings, **passthrough)


def compare(batches: Any, **options: Any) -> ComparisonReport:
    """Several batches side by side in one shared clustering: `compare({"a": path_a, "b": texts_b})`.

    Keyword arguments are those of :func:`clusterdiv.tasks.compare.compare` (`config`, `reference`, `sample`, ...).
    """
    from clusterdiv.tasks.compare import compare as run_compare

    load_options = options.get("load_options")
    return run_compare({name: _accepted(data, load_options) for name, data in dict(batches).items()}, **options)


def explore(data: Any, **options: Any) -> Exploration:
    """The explorer's document (named modes on a 2-D map); see :func:`clusterdiv.tasks.explore.build.explore`."""
    from clusterdiv.tasks.explore.build import explore as run_explore

    return run_explore(_accepted(data, options.get("load_options")), **options)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clusterdiv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ClusterParams",
    "LLMSettings",
    "Report",
    "Representation",
    "RunConfig",
    "ScoreConfig",
    "__version__",
    "audit_tail",
    "compare",
    "drift",
    "explore",
    "lineage",
    "load_examples",
    "mix",
    "score",
]
