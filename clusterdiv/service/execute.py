"""Running one job: request in, stored result out. No HTTP here, so it is testable on its own.

Each kind maps onto the library call a CLI user would make (`score` + explorer data, `compare`,
`audit_tail`), with the server's cache and limits; the same input gives the same report as the
CLI would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.records import Example
from clusterdiv.io.corpus import examples_from_texts
from clusterdiv.llm.structured import LLMSettings
from clusterdiv.service.jobs import JobResult
from clusterdiv.service.schemas import (
    AuditTailJob,
    CompareJob,
    InputExample,
    JobOptions,
    Progress,
    ScoreJob,
    SeedsJob,
    SelectJob,
)
from clusterdiv.service.settings import ServiceSettings


def to_examples(items: Sequence[str | InputExample], *, what: str) -> list[Example]:
    """Request texts as Examples; ids must be given for all items or none (ids stay unique)."""
    parsed = [InputExample(text=i) if isinstance(i, str) else i for i in items]
    with_id = sum(1 for p in parsed if p.id is not None)
    if 0 < with_id < len(parsed):
        raise InputError(f"{what}: {with_id} of {len(parsed)} items have an id; give ids for all or none")
    labels = [p.label for p in parsed] if any(p.label is not None for p in parsed) else None
    try:
        return examples_from_texts([p.text for p in parsed], ids=[p.id for p in parsed] if with_id else None,
                                   labels=labels)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from exc


def resolve_model(options: JobOptions, settings: ServiceSettings) -> str:
    model = options.model or settings.default_model
    if model not in settings.models():
        raise InputError(f"model {model!r} is not allowed on this server; allowed: {', '.join(settings.models())}")
    return model


def resolve_engine(options: JobOptions, settings: ServiceSettings) -> dict[str, Any]:
    """The server's engine; a job naming another is refused (it would start Ray inside the server)."""
    if options.engine not in (None, settings.engine):
        where = "on its Ray cluster" if settings.engine == "ray" else "in-process: it was started without a Ray cluster"
        raise InputError(f"options.engine {options.engine!r} is not this server's engine: it runs jobs {where} "
                         f"(engine {settings.engine!r}); leave engine out")
    return settings.engine_settings()


def score_config(options: JobOptions, settings: ServiceSettings) -> Any:
    from clusterdiv.modes.config import ScoreConfig

    return ScoreConfig(
        llm=LLMSettings(model=resolve_model(options, settings), concurrency=settings.llm_concurrency),
        seed=options.seed, sample=options.sample, metrics=options.metrics, bootstrap=options.bootstrap,
        alpha=options.alpha, engine=resolve_engine(options, settings),
        **({"representation": {"kind": kind}}
           if (kind := options.representation or settings.default_representation) else {}),
    )


class JobCancelled(Exception):
    """Raised from a progress event of a job that was cancelled: the work stops at that example."""


class StoreProgress:
    """A ProgressReporter that writes stage counts to the job row, at most every `interval` s.

    `publish` returns False when the row is no longer this worker's running job (cancelled, or
    requeued elsewhere); then, as when `cancelled` is set, the next progress event raises
    `JobCancelled`, so the job stops at the next example with every answer so far cached."""

    def __init__(self, publish: Any, *, interval: float = 0.5, cancelled: threading.Event | None = None):
        self._publish = publish
        self._interval = interval
        self._last = 0.0
        self._lock = threading.Lock()
        self.progress = Progress()
        self.cancelled = cancelled or threading.Event()

    def _maybe_publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self._interval:
            self._last = now
            if self._publish(self.progress.model_copy(deep=True)) is False:
                self.cancelled.set()

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled("the job was cancelled")

    def start(self, stage: str, total: int) -> None:
        from clusterdiv.service.schemas import StageProgress

        with self._lock:
            self.progress.stage = stage
            self.progress.stages[stage] = StageProgress(done=0, total=total)
            self._maybe_publish(force=True)
        self._check()

    def advance(self, stage: str, n: int = 1, *, cached: bool = False) -> None:
        with self._lock:
            entry = self.progress.stages.get(stage)
            if entry is not None:
                entry.done = min(entry.total, entry.done + n)
            self._maybe_publish()
        self._check()

    def finish(self, stage: str) -> None:
        with self._lock:
            entry = self.progress.stages.get(stage)
            if entry is not None:
                entry.done = entry.total
            self._maybe_publish(force=True)


def execute_job(request: ScoreJob | CompareJob | AuditTailJob | SelectJob | SeedsJob, *, job_id: str,
                settings: ServiceSettings, cache: ModelCache, progress: Any) -> JobResult:
    if isinstance(request, (SelectJob, SeedsJob)):  # issue 17: act on the measurement
        return _act(request, settings=settings, cache=cache)
    if isinstance(request, ScoreJob):
        return _score(request, job_id=job_id, settings=settings, cache=cache, progress=progress)
    if isinstance(request, CompareJob):
        return _compare(request, settings=settings, cache=cache, progress=progress)
    return _audit_tail(request, settings=settings, cache=cache)


def _score(request: ScoreJob, *, job_id: str, settings: ServiceSettings, cache: ModelCache,
           progress: Any) -> JobResult:
    from clusterdiv.reports.report import render_markdown
    from clusterdiv.tasks.explore import explore

    examples = to_examples(request.texts, what="texts")
    reference = to_examples(request.reference, what="reference") if request.reference else None
    exploration = explore(examples, reference=reference, config=score_config(request.options, settings),
                          cache=cache, progress=progress, title=request.dataset or f"job {job_id[:8]}",
                          names="llm" if request.options.name_clusters else "terms", downloads=True)  # the page's subset / seeds
    report = exploration.report
    run_id = None
    if request.dataset:
        from clusterdiv.history.record import record_report

        run_id = record_report(report, dataset=request.dataset, batch_id=f"job-{job_id[:12]}",
                               owner=request.owner, tags=request.tags, db=settings.db)
    return JobResult(result=report.model_dump(mode="json"), exploration=exploration.model_dump(mode="json"),
                     markdown=render_markdown(report), run_id=run_id)


def _compare(request: CompareJob, *, settings: ServiceSettings, cache: ModelCache, progress: Any) -> JobResult:
    from clusterdiv.tasks.compare import compare
    from clusterdiv.tasks.compare_render import render_comparison_markdown

    batches = {name: to_examples(texts, what=f"batch {name!r}") for name, texts in request.batches.items()}
    reference = to_examples(request.reference, what="reference") if request.reference else None
    report = compare(batches, config=score_config(request.options, settings), cache=cache, reference=reference,
                     progress=progress, permutations=request.permutations)
    return JobResult(result=report.model_dump(mode="json"), markdown=render_comparison_markdown(report))


def _audit_tail(request: AuditTailJob, *, settings: ServiceSettings, cache: ModelCache) -> JobResult:
    from clusterdiv.tasks.anchoring import audit_tail
    from clusterdiv.tasks.anchoring import render_markdown as render_anchoring_markdown

    examples = to_examples(request.texts, what="texts")
    model = LLMSettings(model=resolve_model(request.options, settings), concurrency=settings.llm_concurrency)
    report = audit_tail(examples, spec=request.tail, judge=request.judge, model=model,
                        min_count=request.min_count, seed=request.options.seed, cache=cache)
    return JobResult(result=report.model_dump(mode="json"), markdown=render_anchoring_markdown(report))


def _act(request: SelectJob | SeedsJob, *, settings: ServiceSettings, cache: ModelCache) -> JobResult:
    """`select` (the subset's texts and ids, before/after figures) or `seeds` (one entry per lacking mode)."""
    from clusterdiv.reports.markdown import md_text
    from clusterdiv.tasks.actions.render import seeds_summary, select_markdown

    examples = to_examples(request.texts, what="texts")
    reference = to_examples(request.reference, what="reference") if request.reference else None
    config = score_config(request.options, settings).model_copy(update={"metrics": "none"})
    if isinstance(request, SelectJob):
        from clusterdiv.tasks.actions import select_subset

        chosen = select_subset(examples, budget=request.budget, reference=reference, max_share=request.max_share,
                               config=config, cache=cache)
        result = chosen.model_dump(mode="json") | {
            "command": "select", "selected": [{"id": e.id, "text": e.text} for e in chosen.examples]}
        return JobResult(result=result, markdown=select_markdown(chosen))
    from clusterdiv.tasks.actions import tail_seeds

    seeds = tail_seeds(examples, reference=reference, per_mode=request.per_mode,
                       include_under=not request.missing_only, config=config, cache=cache)
    markdown = (f"# clusterdiv seeds\n\n{seeds_summary(seeds)}\n\n| mode | flag | real share | batch share | seeds |\n"
                "| ---: | --- | ---: | ---: | --- |\n" + "".join(
                    f"| {m.mode_id} | {m.flag} | {m.reference_share:.1%} | {m.batch_share:.1%} | "
                    + " / ".join(md_text(s.text) for s in m.seeds) + " |\n" for m in seeds.modes))
    return JobResult(result=seeds.model_dump(mode="json") | {"command": "seeds"}, markdown=markdown)
