"""The mode space: named groups of examples extracted, embedded and clustered together, once.

Every command that talks about modes (`score`, its reference shares, `compare`, `explore`, `drift`,
`mix`, the service's jobs) needs the same composition: criteria from the LLM when the
representation uses them, one vector per example, one clustering of the union. `build_mode_space`
is that composition, and `ModeSpace` its result: per input row its group (a field, never an id
prefix), extraction, vector and mode, plus the clustering and what produced it.

Groups are clustered together so that a mode means the same thing in each ("cluster 3 is 40% of
`gen-A` but 5% of the reference"). Rows keep their group's input order, groups the order given.
Ids only need to be unique within a group; a row is addressed by (group, id).

The report formats that predate the mode space name a row by one string (`ref:<id>` for the
reference in `score`/`explore`, `<batch>:<id>` in `compare`); `ModeSpace.assignments(key=...)`
and `ModeSpace.summaries(key=...)` produce those names at the edge, from the group field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from clusterdiv import engine as engines
from clusterdiv.core.errors import InputError
from clusterdiv.core.records import (
    ClusterAssignment,
    EmbeddedExample,
    Example,
    Extraction,
    RepresentationInfo,
)
from clusterdiv.modes.cluster import Clustering, ClusterParams

if TYPE_CHECKING:
    from clusterdiv.core.prompts import PromptTemplate
    from clusterdiv.modes.names import ModeName
    from clusterdiv.modes.run import RunContext
    from clusterdiv.reports.report import ClusterSummary

BATCH = "batch"
REFERENCE = "reference"


@dataclass(frozen=True)
class ModeRow:
    """One input example in the mode space."""

    group: str
    example: Example
    extraction: Extraction | None  # None when the representation makes no LLM call
    vector: np.ndarray | None  # None when the row is not clustered (failed extraction under `criteria`)
    mode: int | None  # cluster id (NOISE = -1 for noise); None when not clustered
    embedded_text: str | None = None

    @property
    def clustered(self) -> bool:
        return self.mode is not None

    @property
    def failed(self) -> bool:
        return self.extraction is not None and not self.extraction.ok


RowKey = Callable[[ModeRow], str]


def plain_id(row: ModeRow) -> str:
    return row.example.id


@dataclass
class ModeSpace:
    """The result of `build_mode_space`: every row, the clustering of the clustered ones, and how."""

    groups: list[str]
    rows: list[ModeRow]  # every input row: group by group, each in input order
    clustering: Clustering
    representation: RepresentationInfo
    params: ClusterParams
    prompt: PromptTemplate
    fields: list[str]
    _names: dict[int, ModeName] | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------ rows

    def group_rows(self, group: str | None = None) -> list[ModeRow]:
        return [r for r in self.rows if group is None or r.group == group]

    def clustered(self, group: str | None = None) -> list[ModeRow]:
        """The clustered rows (in clustering order), of one group or all."""
        return [r for r in self.rows if r.clustered and (group is None or r.group == group)]

    def labels(self, group: str | None = None) -> list[int]:
        return [int(r.mode) for r in self.clustered(group)]  # type: ignore[arg-type]

    def vectors(self) -> np.ndarray:
        """The clustered rows' vectors, one row each (unit norm: cosine = dot product)."""
        rows = self.clustered()
        return np.asarray([r.vector for r in rows], dtype=np.float32).reshape(len(rows), -1)

    def failures(self, group: str | None = None) -> list[ModeRow]:
        """Rows whose extraction failed (whether or not they were clustered by their text)."""
        return [r for r in self.group_rows(group) if r.failed]

    # ------------------------------------------------------------ the stage records, keyed for a report

    def extractions(self, key: RowKey = plain_id) -> list[Extraction]:
        return [r.extraction.model_copy(update={"example_id": key(r)}) for r in self.rows
                if r.extraction is not None]

    def assignments(self, key: RowKey = plain_id) -> list[ClusterAssignment]:
        return [ClusterAssignment(example_id=key(r), cluster=int(r.mode)) for r in self.clustered()]  # type: ignore[arg-type]

    def embedded(self, key: RowKey = plain_id) -> list[EmbeddedExample]:
        return [EmbeddedExample(example_id=key(r), embedded_text=r.embedded_text or "",
                                vector=np.asarray(r.vector).tolist()) for r in self.clustered()]

    def texts(self, key: RowKey = plain_id) -> dict[str, str]:
        return {key(r): r.example.text for r in self.rows}

    def summaries(self, *, top: int = 10**6, per_cluster: int = 1, key: RowKey = plain_id) -> list[ClusterSummary]:
        """The largest modes with share, example ids and most common criteria (`summarize_clusters`)."""
        from clusterdiv.modes.stages import summarize_clusters

        return summarize_clusters(self.assignments(key), self.extractions(key), top=top, per_cluster=per_cluster,
                                  texts=self.texts(key), names={c: n.name for c, n in self.names().items()},
                                  labels=self.gold_labels(key))

    def gold_labels(self, key: RowKey = plain_id) -> dict[str, str | None]:
        """Each row's gold label (`--label-field`), by key: what a mode's label purity is read from."""
        return {key(r): r.example.label for r in self.rows}

    def names(self) -> dict[int, ModeName]:
        """Every mode's extractive name (`modes.names`), computed once per space: every report of it
        calls a mode by the same name."""
        if self._names is None:
            from clusterdiv.modes.names import mode_names

            rows = self.clustered()
            self._names = mode_names([r.example.text for r in rows], self.labels(), self.vectors(),
                                     [r.example.id for r in rows])
        return self._names


def resolve_prompt(config: Any) -> tuple[PromptTemplate, list[str]]:
    """The extraction prompt and the criteria to embed (`config.criteria` or the prompt's `embed`)."""
    from clusterdiv.core.prompts import PromptTemplate

    prompt = PromptTemplate.load(config.prompt_file)
    fields = list(config.criteria or prompt.spec.embed)
    unknown = [f for f in fields if f not in prompt.criteria_names]
    if unknown:
        raise InputError(f"unknown criteria {unknown}; the prompt defines {prompt.criteria_names}")
    return prompt, fields


def build_mode_space(groups: Mapping[str, Sequence[Example]], config: Any, run: RunContext, *,
                     reuse: ModeSpace | None = None, timed: bool = True,
                     prompt: PromptTemplate | None = None, fields: Sequence[str] | None = None) -> ModeSpace:
    """Extract (when the representation uses the LLM), embed and cluster the union of `groups`.

    `config` is a `ScoreConfig`; `run` supplies cache, progress, call statistics and stage timers
    (`extract`, `embed`, `cluster`; `timed=False` leaves them alone). `reuse` is a space built
    earlier in the same run: rows it already extracted (same group, id and text) are not asked
    again. `prompt`/`fields` override the ones `config` names.
    """
    from clusterdiv.modes.stages import cluster_examples, represent_examples

    if config.llm.dry_run:  # a run with no LLM step to plan still ends with its (empty) plan
        run.stats.dry_run = True
    if prompt is None:
        prompt, resolved = resolve_prompt(config)
        fields = resolved if fields is None else fields
    fields = list(fields if fields is not None else prompt.spec.embed)
    embedder = run.embedder(config.embedding_model)  # an unknown model fails before any LLM call
    names = list(groups)
    members = [(g, e) for g in names for e in groups[g]]
    # Stages key their records by example id; ids are unique only within a group, so the stages see
    # each row's position instead and the records are given back their example's own id below.
    staged = [e.model_copy(update={"id": str(k)}) for k, (_, e) in enumerate(members)]
    known: dict[tuple[str, str, str], Extraction] = {}
    if reuse is not None:
        known = {(r.group, r.example.id, r.example.text): r.extraction for r in reuse.rows
                 if r.extraction is not None}

    def timer(name: str) -> Any:
        from contextlib import nullcontext

        return run.stage(name) if timed else nullcontext()

    extractions: list[Extraction] = []
    if config.representation.uses_llm:
        with timer("extract"), engines.use(getattr(config, "engine", None)):  # the engine computes the cache misses
            todo = [k for k, (g, e) in enumerate(members) if (g, e.id, e.text) not in known]
            fresh = _extract_by_group(todo, members, staged, config=config, run=run, prompt=prompt)
            extractions = [fresh[k] if k in fresh else known[(g, e.id, e.text)].model_copy(update={"example_id": str(k)})
                           for k, (g, e) in enumerate(members)]
    with timer("embed"), engines.use(getattr(config, "engine", None)):
        embedded, info = represent_examples(staged, extractions, config=config, embedder=embedder, cache=run.cache,
                                            prompt=prompt, fields=fields, progress=run.progress)
    if not embedded:
        return _space(names, members, extractions, embedded, None, info, config, prompt, fields)
    with timer("cluster"):
        assignments, clustering = cluster_examples(embedded, params=config.cluster_params(), seed=config.seed)
    return _space(names, members, extractions, embedded, (assignments, clustering), info, config, prompt,
                  fields)


class _OneStage:
    """Forwards the advances of several extraction calls to one progress stage the caller opens and closes."""

    def __init__(self, inner: Any):
        self.inner = inner

    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, n: int = 1, *, cached: bool = False) -> None:
        self.inner.advance(stage, n, cached=cached)

    def finish(self, stage: str) -> None:
        pass


def _extract_by_group(todo: list[int], members: list[tuple[str, Example]], staged: list[Example], *, config: Any,
                      run: RunContext, prompt: PromptTemplate) -> dict[int, Extraction]:
    """Criteria for the rows `todo`, one group after the other (a text in two groups is paid once: the
    later group finds it cached), reported as one `extract` stage."""
    from clusterdiv.modes.stages import extract_if_needed

    if not todo:
        return {}
    out: dict[int, Extraction] = {}
    if config.representation.uses_llm:  # one announcement for every group's calls (their stages say nothing)
        from clusterdiv.llm.structured import announce_calls
        from clusterdiv.modes.extract import prompt_variables

        announce_calls(run.progress, "criteria", prompt, [prompt_variables(staged[k], config.llm) for k in todo],
                       prompt.output_model, settings=config.llm, cache=run.cache, stats=run.stats)
    run.progress.start("extract", len(todo))
    try:
        for group in dict.fromkeys(members[k][0] for k in todo):
            rows = [k for k in todo if members[k][0] == group]
            found = extract_if_needed([staged[k] for k in rows], config=config, cache=run.cache, prompt=prompt,
                                      stats=run.stats, progress=_OneStage(run.progress))
            out.update(zip(rows, found, strict=True))
    finally:
        run.progress.finish("extract")
    return out


def _space(names: list[str], members: list[tuple[str, Example]], extractions: list[Extraction], embedded: list[EmbeddedExample],
           clustered: tuple[list[ClusterAssignment], Clustering] | None, info: RepresentationInfo, config: Any,
           prompt: PromptTemplate, fields: list[str]) -> ModeSpace:
    by_row_ext = {int(x.example_id): x for x in extractions}
    by_row_vec = {int(e.example_id): e for e in embedded}
    modes: dict[int, int] = {}
    clustering = Clustering(labels=[], method="trivial", n_clusters=0, n_noise=0)
    if clustered is not None:
        assignments, clustering = clustered
        modes = {int(a.example_id): a.cluster for a in assignments}
    rows = []
    for k, (group, example) in enumerate(members):
        ext = by_row_ext.get(k)
        emb = by_row_vec.get(k)
        rows.append(ModeRow(
            group=group, example=example,
            extraction=ext.model_copy(update={"example_id": example.id}) if ext is not None else None,
            vector=np.asarray(emb.vector, dtype=np.float32) if emb is not None else None,
            mode=modes.get(k), embedded_text=emb.embedded_text if emb is not None else None,
        ))
    return ModeSpace(groups=names, rows=rows, clustering=clustering,
                     representation=info, params=config.cluster_params(), prompt=prompt, fields=fields)


__all__ = ["BATCH", "REFERENCE", "ModeRow", "ModeSpace", "build_mode_space", "plain_id", "resolve_prompt"]
