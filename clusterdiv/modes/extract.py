"""Stage: ask the LLM for short semantic criteria per example (bounded concurrency, cached)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from clusterdiv.core.aio import run_sync
from clusterdiv.core.cache import ModelCache
from clusterdiv.core.progress import NullProgress, ProgressReporter
from clusterdiv.core.prompts import PromptTemplate
from clusterdiv.core.records import Example, Extraction
from clusterdiv.llm.structured import (
    CallStats,
    FatalLLMError,
    LLMSettings,
    agenerate_structured,
    announce_calls,
    llm_cache_key,
)

if TYPE_CHECKING:
    from clusterdiv.engine import Engine


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def prompt_variables(example: Example, model: LLMSettings) -> dict[str, str]:
    """The prompt's variables for one example: what its cache key and its request are made of."""
    return {"text": _truncate(example.text, model.max_input_chars)}


async def aextract_criteria(
    examples: Sequence[Example],
    *,
    model: LLMSettings,
    cache: ModelCache,
    prompt: PromptTemplate,
    stats: CallStats | None = None,
    progress: ProgressReporter | None = None,
) -> list[Extraction]:
    """One Extraction per example, in input order.

    Results are cached one by one as they complete, so cancelling (Ctrl-C) or crashing keeps every
    finished answer; concurrency is bounded by `model.concurrency`.
    """
    stats = stats if stats is not None else CallStats()
    progress = progress or NullProgress()
    schema = prompt.output_model
    semaphore = asyncio.Semaphore(model.concurrency)
    announce_calls(progress, "criteria", prompt, [prompt_variables(e, model) for e in examples], schema,
                   settings=model, cache=cache, stats=stats)
    progress.start("extract", len(examples))

    async def one(example: Example) -> Extraction:
        async with semaphore:
            outcome = await agenerate_structured(
                prompt,
                prompt_variables(example, model),
                schema,
                model=model,
                cache=cache,
                stats=stats,
            )
        progress.advance("extract", cached=outcome.cached)
        return Extraction(
            example_id=example.id,
            criteria={k: str(v) for k, v in outcome.value.items()} if outcome.value else None,
            error=outcome.error,
            attempts=outcome.attempts,
            cached=outcome.cached,
        )

    try:
        return list(await asyncio.gather(*(one(e) for e in examples)))
    finally:
        progress.finish("extract")


def extract_criteria(examples: Sequence[Example], *, model: LLMSettings, cache: ModelCache,
                     prompt: PromptTemplate, stats: CallStats | None = None,
                     progress: ProgressReporter | None = None) -> list[Extraction]:
    """Synchronous wrapper of `aextract_criteria`; works inside a running event loop too (Jupyter).

    On a distributed engine (`clusterdiv.engine`) only the cache misses leave this process."""
    from clusterdiv import engine as engines

    distributed = engines.current()
    if distributed is not None:
        return _extract_on(distributed, examples, model=model, cache=cache, prompt=prompt,
                           stats=stats if stats is not None else CallStats(), progress=progress or NullProgress())
    return run_sync(lambda: aextract_criteria(examples, model=model, cache=cache, prompt=prompt, stats=stats,
                                              progress=progress))


class _Recorder:
    """The cache an engine's worker extracts with: empty (the driver sent only misses), and keeping
    what would have been written, for the driver to write into the real cache."""

    def __init__(self) -> None:
        self.entries: dict[str, object] = {}

    def get(self, key: str) -> object | None:
        return self.entries.get(key)

    def reject(self, key: str, *, again: bool = False) -> None:
        self.entries.pop(key, None)

    def set(self, key: str, value: object) -> None:
        self.entries[key] = value


class ExtractWorker:
    """Extracts chunks of examples in an engine's worker process (its own model, its own concurrency)."""

    def __init__(self, model: LLMSettings, prompt: PromptTemplate):
        self.model = model
        self.prompt = (prompt.spec, prompt.source, prompt.content_hash)  # rebuilt there: the schema class is made at run time

    def __call__(self, examples: list[Example]) -> dict[str, object]:
        spec, source, content_hash = self.prompt
        prompt = PromptTemplate(spec, source=source, content_hash=content_hash)
        recorder, stats = _Recorder(), CallStats()
        try:
            found = extract_criteria(examples, model=self.model, cache=recorder, prompt=prompt,  # type: ignore[arg-type]
                                     stats=stats)
        except FatalLLMError as exc:  # the driver stops the run, as it would in-process
            return {"fatal": str(exc)}
        return {"extractions": found, "entries": recorder.entries,
                "stats": (stats.calls, stats.failures, stats.prompt_tokens, stats.completion_tokens)}


def _extract_on(distributed: Engine, examples: Sequence[Example], *, model: LLMSettings, cache: ModelCache,
                prompt: PromptTemplate, stats: CallStats, progress: ProgressReporter) -> list[Extraction]:
    """The cached answers here, the misses on `distributed`, each chunk's answers cached as it returns."""
    from clusterdiv import engine as engines

    schema = prompt.output_model
    announce_calls(progress, "criteria", prompt, [prompt_variables(e, model) for e in examples], schema,
                   settings=model, cache=cache, workers=distributed.settings.workers or 1, stats=stats)
    keys = [llm_cache_key(prompt, prompt_variables(e, model), schema, settings=model) for e in examples]
    stored = cache.get_many(keys)
    hits = [k for k, v in enumerate(stored) if v is not None]
    misses = [k for k, v in enumerate(stored) if v is None]
    out: dict[int, Extraction] = {}
    progress.start("extract", len(examples))
    try:
        # A damaged entry among the hits is asked again here, as in-process.
        cached = [examples[k] for k in hits]
        found = run_sync(lambda: aextract_criteria(cached, model=model, cache=cache, prompt=prompt, stats=stats))
        out.update(zip(hits, found, strict=True))
        progress.advance("extract", len(hits), cached=True)
        chunks = engines.chunked(misses, distributed.settings.extract_chunk)
        worker = ExtractWorker(model, prompt)
        for c, result in distributed.map(worker, [[examples[k] for k in chunk] for chunk in chunks]):
            rows = chunks[c]
            if isinstance(result, engines.ChunkFailure):
                stats.failures += len(rows)
                out.update((k, Extraction(example_id=examples[k].id, error=result.reason)) for k in rows)
            elif result.get("fatal"):
                raise FatalLLMError(str(result["fatal"]))
            else:
                for key, value in result["entries"].items():
                    cache.set(key, value)
                calls, failures, prompt_tokens, completion_tokens = result["stats"]
                stats.calls += calls
                stats.failures += failures
                stats.prompt_tokens += prompt_tokens
                stats.completion_tokens += completion_tokens
                out.update(zip(rows, result["extractions"], strict=True))
            progress.advance("extract", len(rows))
    finally:
        progress.finish("extract")
    return [out[k] for k in range(len(examples))]

