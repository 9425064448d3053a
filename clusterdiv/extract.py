"""Stage: ask the LLM for short semantic criteria per example (bounded concurrency, cached)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from clusterdiv.aio import run_sync
from clusterdiv.cache import ModelCache
from clusterdiv.llm.structured import CallStats, LLMSettings, agenerate_structured
from clusterdiv.progress import NullProgress, ProgressReporter
from clusterdiv.prompts import PromptTemplate
from clusterdiv.records import Example, Extraction


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


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
    progress.start("extract", len(examples))

    async def one(example: Example) -> Extraction:
        async with semaphore:
            outcome = await agenerate_structured(
                prompt,
                {"text": _truncate(example.text, model.max_input_chars)},
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
    """Synchronous wrapper of `aextract_criteria`; works inside a running event loop too (Jupyter)."""
    return run_sync(lambda: aextract_criteria(examples, model=model, cache=cache, prompt=prompt, stats=stats,
                                              progress=progress))

