"""The run context: what one command run owns besides its data.

A `RunContext` holds the model cache (opened at most once, lazily, and closed once when the run
opened it; a cache passed in is the caller's to close), the progress reporter, the stage timers,
the LLM call statistics and the embedders, and turns them into the report's `Timings` and
`RunConfig`. Every command that runs the stages takes one, so none of them writes the cache,
timer or statistics boilerplate again:

    with RunContext(cache=cache, progress=progress) as run:
        with run.stage("load"):
            examples = ...
        space = build_mode_space({"batch": examples}, config, run)
        report = Report(..., config=run.run_config(config, space), timings=run.finish())
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import NullProgress, ProgressReporter
from clusterdiv.llm.structured import CallStats
from clusterdiv.reports.report import RunConfig, Timings

if TYPE_CHECKING:
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.modes.embed import Embedder
    from clusterdiv.modes.modespace import ModeSpace

BUNDLED_PROMPT = "bundled:extract_criteria.yaml"


class RunContext:
    """Cache, progress, stage timers, call statistics and embedders of one run (see the module docstring)."""

    def __init__(self, *, cache: ModelCache | None = None, progress: ProgressReporter | None = None,
                 stats: CallStats | None = None):
        self._cache = cache
        self._own_cache = cache is None
        self._embedding_hits = cache.saved_hits("embedding") if cache is not None else 0
        self.progress: ProgressReporter = progress or NullProgress()
        self.stats = stats if stats is not None else CallStats()
        self.timings = Timings()
        self.stage_seconds: dict[str, float] = {}  # `<stage>_s` -> seconds, in the order first timed
        self._embedders: dict[str, Embedder] = {}
        self._started = time.perf_counter()

    # ------------------------------------------------------------ resources

    @property
    def cache(self) -> ModelCache:
        """The run's cache, opened on first use when none was given (a run that needs no model opens none)."""
        if self._cache is None:
            from clusterdiv.core.cache import ModelCache

            self._cache = ModelCache()
            self._embedding_hits = self._cache.saved_hits("embedding")
        return self._cache

    def embedder(self, model: str | Embedder) -> Embedder:
        """One `Embedder` per model name for the whole run; an `Embedder` given is used as it is."""
        from clusterdiv.modes.embed import Embedder

        if isinstance(model, Embedder):
            return self._embedders.setdefault(model.spec.name, model)
        if model not in self._embedders:
            made = Embedder(model)
            self._embedders[model] = self._embedders.setdefault(made.spec.name, made)
        return self._embedders[model]

    def use_embedder(self, name: str, embedder: Embedder) -> None:
        """Serve `name` with an already loaded embedder (a caller's, reused across runs)."""
        self._embedders[name] = embedder

    def close(self) -> None:
        if self._own_cache and self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> RunContext:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close()
        if exc_type is None and self.stats.dry_run:
            # A dry run that got to the end: every LLM step it reached was cached, so its plan is the
            # whole run's (0 calls), and what it computed is not the answer it was asked for.
            from clusterdiv.llm.structured import LLMPlan, PlanReady

            raise PlanReady(LLMPlan(steps=self.stats.plan, complete=True))

    # ------------------------------------------------------------ measurement

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage into `timings.<name>_s` (repeated stages add up)."""
        key = f"{name}_s"
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.stage_seconds[key] = self.stage_seconds.get(key, 0.0) + elapsed
            if key in Timings.model_fields:
                setattr(self.timings, key, getattr(self.timings, key) + elapsed)

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def finish(self, *, llm: bool = True, tokens: bool = True) -> Timings:
        """The report's `Timings`: stage times, total, LLM and embedding calls and cache hits."""
        t = self.timings
        if llm:
            t.llm_calls = self.stats.calls
            t.llm_cache_hits = self.stats.cache_hits
        if tokens:
            t.prompt_tokens = self.stats.prompt_tokens
            t.completion_tokens = self.stats.completion_tokens
        if llm:
            t.llm_cost_usd = round(self.stats.cost_usd, 6)
            t.llm_unpriced_calls = self.stats.unpriced_calls
            t.llm_stopped, t.llm_not_asked = self.stats.stopped, self.stats.not_asked
        t.embedding_calls = sum(e.calls for e in {id(e): e for e in self._embedders.values()}.values())
        if self._cache is not None:
            t.embedding_cache_hits = self._cache.saved_hits("embedding") - self._embedding_hits  # not its own writes
        t.total_s = self.elapsed()
        return t.model_copy()  # later stages of the run never change a report already made

    def run_config(self, config: Any, space: ModeSpace, *, sample: int | None) -> RunConfig:
        """The report's `RunConfig` for a run of `config` whose modes are `space`'s."""
        from clusterdiv import __version__
        from clusterdiv.llm.plugins import get_registry

        embedder = self.embedder(config.embedding_model)
        try:
            model_fingerprint = get_registry().fingerprint(config.llm.model)
        except InputError:  # a run that called no LLM records its model even where it is not installed
            if config.representation.uses_llm:
                raise
            model_fingerprint = f"{config.llm.model} (not installed; no call made)"
        return RunConfig(
            model=config.llm.model,
            model_fingerprint=model_fingerprint,
            embedding_model=embedder.spec.name,
            embedding_fingerprint=embedder.spec.fingerprint,
            prompt_file=space.prompt.source if config.prompt_file else BUNDLED_PROMPT,
            prompt_sha256=space.prompt.content_hash,
            embedded_criteria=list(space.fields) if config.representation.uses_llm else [],
            seed=config.seed,
            sample=sample,
            reference_size=config.reference_size,
            clustering=space.params.model_dump(),
            clustering_method=space.clustering.method,
            clusterdiv_version=__version__,
            engine=config.engine.name if hasattr(config, "engine") else "local",
        )


__all__ = ["RunContext"]
