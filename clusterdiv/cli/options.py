"""Option groups: options several commands share, declared once and spread into each command's flags.

A command takes a whole group as one parameter and `@shared_options` spreads it into the flags
typer shows, so `score`, `check`, `compare` and `explore` cannot drift apart in what `--model` or
`--threshold` means, and each builds its ScoreConfig and load options the same way. Groups build
on `InputOptions` (how the input is read, where the cache is), which every command that reads a
batch takes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from clusterdiv.cli.common import (
    Alpha,
    ApiBase,
    ApiKey,
    CacheDir,
    Concurrency,
    Criteria,
    Debug,
    DryRun,
    EmbeddingModel,
    IdField,
    InputFormatOpt,
    LabelField,
    LLMTimeout,
    MaxCalls,
    MaxCost,
    Metrics,
    Model,
    Partial,
    Progress,
    PromptFile,
    Reference,
    ReferenceLabelField,
    ReferenceSize,
    RepresentationOpt,
    Sample,
    SampleWidth,
    Seed,
    SkipInvalid,
    TextField,
    TextWeight,
    Threshold,
    build_config,
    progress_bars,
)
from clusterdiv.core.records import REFERENCE_SIZE
from clusterdiv.modes.shares import DEFAULT_ALPHA


@dataclasses.dataclass(frozen=True)
class Vary:
    """How one command takes a shared group: without some of its options, or with its own for some."""

    omit: tuple[str, ...] = ()
    override: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def vary(*omit: str, **override: Any) -> Vary:
    """`Annotated[ScoreOptions, vary("api_key", sample=MySample)]`: the group less `--api-key`, own `--sample`."""
    return Vary(omit, override)


class OptionGroup:
    """Base of a frozen dataclass whose fields are typer options (the aliases above) with defaults.

    An omitted option (see `vary`) keeps its field default, so a command without `--api-key` gets
    the same object as one run without the flag.
    """

    @classmethod
    def parameters(cls, how: Vary) -> list[inspect.Parameter]:
        """The group's options as the parameters typer reads, in field order."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        unknown = (set(how.omit) | set(how.override)) - {f.name for f in fields}
        if unknown:
            raise TypeError(f"{cls.__name__} has no option(s) {sorted(unknown)}")
        hints = get_type_hints(cls, include_extras=True)
        return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                  annotation=how.override.get(f.name, hints[f.name]))
                for f in fields if f.name not in how.omit]


def shared_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Let a typer command take an `OptionGroup` parameter: its options become the command's flags.

    The signature typer reads has the group's options in place of the group parameter; the command
    itself is called with one group instance built from them. All parameters become keyword-only
    (typer passes everything by name), so a group may follow options that have defaults.
    """
    hints = get_type_hints(command, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[OptionGroup], list[str]]] = {}
    for param in inspect.signature(command).parameters.values():
        hint = hints.get(param.name, param.annotation)
        base, extras = (get_args(hint)[0], get_args(hint)[1:]) if get_origin(hint) is Annotated else (hint, ())
        if isinstance(base, type) and issubclass(base, OptionGroup):
            how = next((e for e in extras if isinstance(e, Vary)), Vary())
            spread = base.parameters(how)
            groups[param.name] = (base, [p.name for p in spread])
            params += spread
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hint))
    names = [p.name for p in params]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise TypeError(f"{command.__name__}: options {clashes} are declared twice (omit them from the group)")

    @functools.wraps(command)
    def run(**values: Any) -> Any:
        for name, (group, members) in groups.items():
            values[name] = group(**{m: values.pop(m) for m in members})
        return command(**values)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    return run


@dataclasses.dataclass(frozen=True)
class InputOptions(OptionGroup):
    """How a command reads its input, where it keeps model answers, whether it draws progress: every
    command that reads a batch and builds modes takes these (through `ScoreOptions`, `ActionOptions`
    or `AnchoringOptions`), so `--no-progress` or `--debug` means the same on each."""

    text_field: TextField = None
    id_field: IdField = None
    skip_invalid: SkipInvalid = False
    cache_dir: CacheDir = None
    debug: Debug = False
    progress: Progress = True

    def cache(self) -> Any:
        """The model cache at `--cache-dir`, for a `with` block (opened once, closed once)."""
        from clusterdiv.core.cache import ModelCache

        return ModelCache(self.cache_dir)

    @contextlib.contextmanager
    def session(self) -> Iterator[tuple[Any, Any]]:
        """The model cache (opened once, closed once) and the progress bars, if wanted."""
        with self.cache() as cache, progress_bars(self.progress) as bars:
            yield cache, bars

    def load_options(self, **extra: Any) -> dict[str, Any]:
        """`load_corpus` options for the input (and whatever a command adds)."""
        return {"text_field": self.text_field, "id_field": self.id_field, "skip_invalid": self.skip_invalid, **extra}


@dataclasses.dataclass(frozen=True)
class SpendOptions(OptionGroup):
    """What a command that can call an LLM may spend: a plan instead of a run (`--dry-run`) and a
    budget (`--max-calls`, `--max-cost`, `--partial`). Every group with `--model` takes these, so
    every LLM command plans and budgets alike (`llm.structured`: `announce_calls`, `budget_left`)."""

    dry_run: DryRun = False
    max_calls: MaxCalls = None
    max_cost: MaxCost = None
    partial: Partial = False

    def spend(self) -> dict[str, Any]:
        """The `LLMSettings` fields these options set."""
        return {"dry_run": self.dry_run, "max_calls": self.max_calls, "max_cost": self.max_cost,
                "partial": self.partial}


@dataclasses.dataclass(frozen=True)
class ScoreOptions(SpendOptions, InputOptions):
    """What `score` needs to read the input and build the modes; `check`, `compare`, `explore` take it too."""

    model: Model = "local/smollm2"
    embedding_model: EmbeddingModel = "all-MiniLM-L6-v2"
    sample: Sample = None
    sample_width: SampleWidth = 0.02
    seed: Seed = 0
    label_field: LabelField = None
    prompt_file: PromptFile = None
    criteria: Criteria = None
    representation: RepresentationOpt = None
    text_weight: TextWeight = None
    threshold: Threshold = None
    api_base: ApiBase = None
    api_key: ApiKey = None
    concurrency: Concurrency = 4
    timeout: LLMTimeout = None
    reference_size: ReferenceSize = REFERENCE_SIZE
    metrics: Metrics = "all"
    reference: Reference = None
    reference_label_field: ReferenceLabelField = None
    alpha: Alpha = DEFAULT_ALPHA
    input_format: InputFormatOpt = None

    def config(self) -> Any:
        """The ScoreConfig (metric names validated)."""
        return build_config(model=self.model, embedding_model=self.embedding_model, seed=self.seed,
                            sample=self.sample,
                            prompt_file=self.prompt_file, criteria=self.criteria, api_base=self.api_base,
                            api_key=self.api_key, concurrency=self.concurrency, timeout=self.timeout,
                            reference_size=self.reference_size, metrics=self.metrics,
                            representation=self.representation, text_weight=self.text_weight,
                            threshold=self.threshold, sample_width=self.sample_width, alpha=self.alpha,
                            spend=self.spend())

    def load_options(self) -> dict[str, Any]:
        """`load_corpus` options for the input."""
        return super().load_options(label_field=self.label_field,
                                    format=self.input_format.value if self.input_format else None)

    def reference_load_options(self) -> dict[str, Any]:
        """`load_corpus` options for the reference: its ids and labels are not the batch's."""
        return {"text_field": self.text_field, "skip_invalid": self.skip_invalid,
                **({"label_field": self.reference_label_field} if self.reference_label_field else {})}
