"""The metric registry: every set metric declared once, and one entry point that computes a selection.

Each metric is a :class:`MetricSpec`: its name, its group (``lexical`` needs only the texts,
``semantic`` also their embeddings, ``reference`` also a reference set's embeddings), a one-line
meaning, its direction (does a higher value mean more diverse?) and its compute function. The
report, the history trends and the CI gate, the CLI tables and the service all read it; nothing
else stores a metric's direction or meaning.

A plugin adds a metric through the plugin mechanism of :mod:`clusterdiv.llm.plugins` (a module
named in ``$CLUSTERDIV_PLUGINS`` or the ``clusterdiv.plugins`` entry-point group, whose
``register(registry)`` calls ``registry.register_metric(...)``). Plugin metrics are loaded on first
need: a selection of ``all`` (the default) or one naming them. A group name (``lexical``) selects
the built-in metrics of that group, so ``--metrics lexical`` never imports a plugin.

A metric that cannot be computed gets ``value=None`` and the reason in ``details`` instead of
failing the whole run, because the other metrics are still worth reporting.

Importing this module and computing lexical metrics never imports torch: embeddings are passed in
as arrays, and the MAUVE package (which imports torch) is imported only when ``mauve`` is computed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from clusterdiv.core.records import REFERENCE_SIZE
from clusterdiv.metrics import lexical
from clusterdiv.metrics.builtins import BUILTINS, DISTINCT_ORDERS
from clusterdiv.metrics.spec import (
    COMPRESSION_CI_MAX_BYTES,
    GROUPS,
    LESS_DIVERSE,
    MORE_DIVERSE,
    NO_DIRECTION,
    UNBOUNDED,
    MetricCompute,
    MetricInputs,
    MetricSpec,
    MetricValue,
    keep_for_interval,
)

__all__ = [
    "ALL_METRICS",
    "COMPRESSION_CI_MAX_BYTES",
    "GROUPS",
    "LESS_DIVERSE",
    "MEANINGS",
    "METRIC_GROUPS",
    "MORE_DIVERSE",
    "NO_DIRECTION",
    "MetricInputs",
    "MetricPlan",
    "MetricSpec",
    "MetricValue",
    "compute_lexical_metrics",
    "compute_set_metrics",
    "direction",
    "metric_names",
    "metric_spec",
    "metric_specs",
    "register_metric",
    "resolve_selection",
    "select_metrics",
    "unregister_metric",
    "validate_selection",
    "value_range",
]


RESERVED_NAMES = frozenset({"score", "score_normalized", "cluster_shares", "all", "none", *GROUPS})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")




_SPECS: dict[str, MetricSpec] = {spec.name: spec for spec in BUILTINS}

# Views of the built-in metrics (constants: they never include plugin metrics).
METRIC_GROUPS: dict[str, list[str]] = {g: [s.name for s in BUILTINS if s.group == g] for g in GROUPS}
ALL_METRICS: list[str] = [s.name for s in BUILTINS]
MEANINGS: dict[str, str] = {s.name: s.meaning for s in BUILTINS}

_plugins_loaded = False


def load_plugins() -> None:
    """Run the plugins' ``register(registry)`` once (they may register metrics); idempotent."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from clusterdiv.llm.plugins import get_registry

    plugins = get_registry()
    for metric in plugins.metrics:
        register_metric(**metric)
    plugins.metric_sink = register_metric


def register_metric(name: str, compute: MetricCompute, *, group: str = "lexical", meaning: str,
                    direction: int = MORE_DIVERSE,
                    value_range: tuple[float, float] = UNBOUNDED) -> MetricSpec:
    """Add a metric of your own (normally from a plugin's ``register(registry)``).

    ``compute(inputs: MetricInputs)`` returns a float, None (undefined) or a :class:`MetricValue`;
    raising ``ValueError`` makes the value undefined with the message as its reason. ``group``
    says what it needs (``lexical``: texts, ``semantic``: embeddings too, ``reference``: a
    reference set's embeddings too); ``direction`` is +1 when higher means more diverse, -1 when
    higher means less diverse, 0 when neither. ``value_range`` (low, high) holds every value it can
    take, so a threshold outside it is refused (default: unbounded). Registering a name again replaces it.
    """
    if not _NAME.match(name) or name in RESERVED_NAMES:
        raise ValueError(f"metric name {name!r} must be lower_snake_case, at most 64 characters, and not "
                         f"one of {', '.join(sorted(RESERVED_NAMES))}")
    if name in _SPECS and _SPECS[name].builtin:
        raise ValueError(f"{name!r} is a built-in metric; choose another name")
    if group not in GROUPS:
        raise ValueError(f"metric group must be one of {', '.join(GROUPS)}, got {group!r}")
    if direction not in (MORE_DIVERSE, LESS_DIVERSE, NO_DIRECTION):
        raise ValueError(f"direction must be 1, -1 or 0, got {direction!r}")
    low, high = (float(v) for v in value_range)
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"value_range must be (low, high) with low <= high, got {value_range!r}")
    spec = MetricSpec(name=name, group=group, meaning=meaning, direction=direction,  # type: ignore[arg-type]
                      compute=compute, builtin=False, value_range=(low, high))
    _SPECS[name] = spec
    return spec


def unregister_metric(name: str) -> None:
    """Remove a plugin metric (built-ins stay); unknown names are ignored."""
    spec = _SPECS.get(name)
    if spec is not None and not spec.builtin:
        del _SPECS[name]


def metric_specs() -> list[MetricSpec]:
    """Every metric, built-ins first (in :data:`ALL_METRICS` order), then plugins in registration order."""
    load_plugins()
    return list(_SPECS.values())


def metric_names() -> list[str]:
    return [s.name for s in metric_specs()]


def metric_spec(name: str) -> MetricSpec:
    """The spec of one metric; ``KeyError`` for an unknown name (plugins are loaded first)."""
    if name not in _SPECS:
        load_plugins()
    return _SPECS[name]


def direction(name: str) -> int:
    """+1 when a higher value means more diverse, -1 when less, 0 when neither; unknown names +1."""
    try:
        return metric_spec(name).direction
    except KeyError:
        return MORE_DIVERSE


def value_range(name: str) -> tuple[float, float]:
    """The (low, high) every value of the metric lies in; unknown names are unbounded."""
    try:
        return metric_spec(name).value_range
    except KeyError:
        return UNBOUNDED


def resolve_selection(spec: str | Iterable[str] | None) -> set[str]:
    """Metric names from group names and/or metric names (``"lexical,vendi"`` or an iterable).

    ``None`` means every metric, plugins included. A group name means the group's built-in metrics;
    a plugin metric is selected by its name. Unknown names raise ``ValueError`` listing the valid
    ones, so a typo in the metric selection is an error rather than an empty table.
    """
    if spec is None:
        return set(metric_names())
    items = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else [p.strip() for p in spec]
    selected: set[str] = set()
    for item in filter(None, items):
        if item in METRIC_GROUPS:
            selected.update(METRIC_GROUPS[item])
        elif item in _SPECS:
            selected.add(item)
        elif load_plugins() is None and item in _SPECS:  # a plugin metric, by name
            selected.add(item)
        else:
            valid = ", ".join([*METRIC_GROUPS, *_SPECS])
            raise ValueError(f"unknown metric or group {item!r}; choose from: {valid}")
    return selected


def validate_selection(spec: str | None) -> str | None:
    """``spec`` unchanged when it is ``all``, ``none`` or resolves; else ``ValueError`` naming the valid ones."""
    if spec not in (None, "all", "none"):
        resolve_selection(spec)
    return spec


@dataclass(frozen=True)
class MetricPlan:
    """Which metrics a run computes and which inputs that takes."""

    selected: frozenset[str]
    needs_embeddings: bool
    needs_reference_embeddings: bool


def select_metrics(spec: str | Iterable[str] | None, *, has_reference: bool,
                   none_keeps_reference: bool = False) -> MetricPlan:
    """The one place a metric selection (``all``, ``none``, groups, names) becomes a plan.

    Reference metrics are dropped without reference data. ``none`` selects nothing, or with
    ``none_keeps_reference`` only the reference metrics (what `score --metrics none --reference`
    reports beside the shared-clustering shares).
    """
    if spec == "none":
        selected = {s.name for s in metric_specs() if s.needs_reference} if none_keeps_reference else set()
    else:
        selected = resolve_selection(None if spec in (None, "all") else spec)
    if not has_reference:
        selected = {n for n in selected if not metric_spec(n).needs_reference}
    specs = [metric_spec(n) for n in selected]
    return MetricPlan(selected=frozenset(selected), needs_embeddings=any(s.needs_embeddings for s in specs),
                      needs_reference_embeddings=has_reference and any(s.needs_reference for s in specs))


def compute_set_metrics(
    texts: list[str],
    *,
    embeddings: np.ndarray | None = None,
    reference_embeddings: np.ndarray | None = None,
    select: set[str] | str | None = None,
    seed: int = 0,
    bootstrap: int = 200,
    self_bleu_sample: int | None = None,
    reference_size: int = REFERENCE_SIZE,
) -> dict[str, MetricValue]:
    """Compute the selected set metrics of ``texts`` (all metrics whose inputs are given by default).

    Semantic metrics need ``embeddings`` (one row per text); reference metrics also need
    ``reference_embeddings`` (rows = reference examples, same dimension). A selected metric whose
    input is missing is skipped, not reported as undefined, so "all" means "all that apply".
    ``select`` holds metric names and/or group names of :data:`METRIC_GROUPS`; None selects all.
    Intervals (``ci95``, method in ``details["ci_method"]``): mean cosine gets a seeded bootstrap
    of ``bootstrap`` replicates; distinct-n and compression ratio get jackknife intervals instead,
    because resampling with replacement duplicates texts and duplicates are what those two metrics
    measure (the bootstrap there is biased, see :func:`lexical.distinct_n_leave_one_out`).
    ``bootstrap=0`` turns all intervals off. Self-BLEU, Vendi and reference metrics get none
    (not cheap). Order of the result follows :func:`metric_specs` (built-ins as :data:`ALL_METRICS`).
    """
    wanted = resolve_selection(None if select is None else select)
    if embeddings is not None:
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
            raise ValueError(
                f"embeddings must have one row per text: {len(texts)} texts, shape {embeddings.shape}"
            )
    inputs = MetricInputs(
        texts=texts, embeddings=embeddings,
        reference_embeddings=None if reference_embeddings is None else np.asarray(reference_embeddings),
        seed=seed, bootstrap=bootstrap, self_bleu_sample=self_bleu_sample, rng=np.random.default_rng(seed),
        reference_size=reference_size,
    )
    return _compute(inputs, wanted)


def compute_lexical_metrics(
    chunks: Iterable[Sequence[str]],
    *,
    select: set[str] | str | None = "lexical",
    seed: int = 0,
    bootstrap: int = 200,
    self_bleu_sample: int | None = None,
) -> dict[str, MetricValue]:
    """The built-in lexical metrics of texts that arrive in chunks, in memory that does not grow with
    their number (see :class:`lexical.LexicalStream`); values equal :func:`compute_set_metrics`'s
    on the same texts (intervals up to float rounding of the merged jackknife sums).

    ``select`` may name only built-in lexical metrics (plugin metrics get the texts themselves, so
    they need :func:`compute_set_metrics`); ``ValueError`` otherwise.
    """
    wanted = resolve_selection(select)
    builtin_lexical = set(METRIC_GROUPS["lexical"])
    if not wanted <= builtin_lexical:
        raise ValueError(f"only built-in lexical metrics can be streamed, not {', '.join(sorted(wanted - builtin_lexical))}")
    stream = lexical.LexicalStream(orders=max(DISTINCT_ORDERS), compress="compression_ratio" in wanted,
                                   keep_texts=keep_for_interval)
    with stream:
        for chunk in chunks:
            stream.add(chunk)
        inputs = MetricInputs(texts=None, lexical_stream=stream, seed=seed, bootstrap=bootstrap,
                              self_bleu_sample=self_bleu_sample, rng=np.random.default_rng(seed))
        return _compute(inputs, wanted)


def _compute(inputs: MetricInputs, wanted: set[str]) -> dict[str, MetricValue]:
    out: dict[str, MetricValue] = {}
    for spec in (metric_spec(n) for n in [*ALL_METRICS, *(n for n in _SPECS if n not in ALL_METRICS)]):
        if spec.name not in wanted:
            continue
        if spec.needs_embeddings and inputs.embeddings is None:
            continue
        if spec.needs_reference and inputs.reference_embeddings is None:
            continue
        out[spec.name] = _run(spec, inputs)
    return out


def _run(spec: MetricSpec, inputs: MetricInputs) -> MetricValue:
    """One metric; a ValueError (undefined for this input) becomes value=None with the reason."""
    try:
        result = spec.compute(inputs)
    except ValueError as exc:
        return spec.undefined(str(exc))
    if isinstance(result, MetricValue):
        return result
    if result is None or (isinstance(result, float) and math.isnan(result)):
        return spec.undefined("undefined for this input")
    return MetricValue(name=spec.name, value=float(result), meaning=spec.meaning)
