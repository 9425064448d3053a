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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clusterdiv.metrics import lexical, reference, semantic

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
]

Group = Literal["lexical", "semantic", "reference"]
GROUPS: tuple[str, ...] = ("lexical", "semantic", "reference")

MORE_DIVERSE = 1
"""Direction: a higher value means a more diverse set (distinct-n, Vendi, recall, ...)."""
LESS_DIVERSE = -1
"""Direction: a higher value means a less diverse set (self-BLEU, mean cosine)."""
NO_DIRECTION = 0
"""Direction: neither way is better (density ~1 means "like the reference"); any move is flagged."""

RESERVED_NAMES = frozenset({"score", "score_normalized", "cluster_shares", "all", "none", *GROUPS})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

DISTINCT_ORDERS = (1, 2, 3, 4)

JACKKNIFE_GROUPS = 20
"""Groups of the delete-a-group jackknife used for the compression-ratio interval."""

COMPRESSION_CI_MAX_BYTES = 64 * 2**20
"""Most bytes gzip may process for the compression-ratio interval (groups x corpus size). Each
group costs a gzip of most of the corpus, so beyond this the interval is not "cheap" any more: it
is left out and ``details`` says why."""

Z95 = 1.959963984540054  # standard normal 97.5% quantile


KNN_K = 5

MIN_TEXTS_FOR_INTERVAL = 3
"""Below this many texts a jackknife or bootstrap interval is degenerate (often zero-width): it is
left out (``ci95`` None) and ``details["ci_skipped"]`` says why, instead of a misleading 0-width one."""


def _too_few(n: int) -> str | None:
    if n < MIN_TEXTS_FOR_INTERVAL:
        return f"n={n} texts is too few for an interval (needs {MIN_TEXTS_FOR_INTERVAL})"
    return None


class MetricValue(BaseModel):
    """One computed metric, ready for a table row and for JSON output."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: float | None = Field(description="None when the metric is undefined for this input")
    ci95: tuple[float, float] | None = Field(default=None, description="seeded bootstrap 95% interval")
    meaning: str
    details: dict[str, Any] = Field(default_factory=dict)


@dataclass
class MetricInputs:
    """What a metric's compute function receives; work shared by several metrics is memoised.

    ``texts`` is None when the texts were streamed (:func:`compute_lexical_metrics`): then only
    ``lexical`` is there, the built-in lexical metrics' summary of them.
    """

    texts: list[str] | None
    embeddings: np.ndarray | None = None
    reference_embeddings: np.ndarray | None = None
    seed: int = 0
    bootstrap: int = 200
    self_bleu_sample: int | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per input set (e.g. the k-NN radii behind precision and recall)."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    lexical_stream: lexical.LexicalStream | None = None

    @property
    def lexical(self) -> lexical.LexicalStream:
        """The texts' lexical summary; in memory, the same stream fed all texts as one chunk."""
        if self.lexical_stream is None:
            assert self.texts is not None
            self.lexical_stream = lexical.LexicalStream(spill=False, keep_texts=_keep_for_interval).add(self.texts)
        return self.lexical_stream

    @property
    def corpus(self) -> lexical.EncodedCorpus:
        """The in-memory texts' token ids and n-gram tables (for plugin metrics that want them)."""
        return self.shared("corpus", lambda: lexical.EncodedCorpus(self.lexical))

    @property
    def n_texts(self) -> int:
        return len(self.texts) if self.texts is not None else self.lexical.n_texts


MetricCompute = Callable[[MetricInputs], "MetricValue | float | None"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric, declared once: everything that reads a metric's meaning or direction reads this."""

    name: str
    group: Group
    meaning: str
    direction: int
    """:data:`MORE_DIVERSE` (+1), :data:`LESS_DIVERSE` (-1) or :data:`NO_DIRECTION` (0)."""
    compute: MetricCompute
    builtin: bool = True

    @property
    def needs_embeddings(self) -> bool:
        return self.group in ("semantic", "reference")

    @property
    def needs_reference(self) -> bool:
        return self.group == "reference"


def _undefined(name: str, reason: str, **details: Any) -> MetricValue:
    return MetricValue(name=name, value=None, meaning=metric_spec(name).meaning,
                       details={"reason": reason, **details})


def _value(name: str, value: float, **kwargs: Any) -> MetricValue:
    return MetricValue(name=name, value=value, meaning=metric_spec(name).meaning, **kwargs)


# --- the built-in metrics ---------------------------------------------------------------------------


def _distinct(n: int) -> MetricCompute:
    name = f"distinct_{n}"

    def compute(inputs: MetricInputs) -> MetricValue:
        stream = inputs.lexical
        unique, total = stream.ngram_counts(n)
        details: dict[str, Any] = {"unique_ngrams": unique, "total_ngrams": total}
        if not total:
            return _undefined(name, f"no text has {n} tokens, so there are no {n}-grams", **details)
        value = stream.distinct(n)
        ci = None
        if inputs.bootstrap > 0 and (few := _too_few(stream.n_texts)):
            details["ci_skipped"] = few
        elif inputs.bootstrap > 0 and stream.n_texts > 1:
            ci = _jackknife_ci_parts(value, stream.leave_one_out(n), bounds=(0.0, 1.0))
            details["ci_method"] = "leave-one-text-out jackknife, normal"
        return _value(name, value, ci95=ci, details=details)

    return compute


def _self_bleu(inputs: MetricInputs) -> MetricValue:
    result = inputs.lexical.self_bleu(sample=inputs.self_bleu_sample, seed=inputs.seed)
    return _value("self_bleu", result.value, details={
        "n_hypotheses": result.n_hypotheses,
        "sampled": result.sampled,
        "max_n": result.max_n,
        "smoothing": "nltk method1 (epsilon 0.1)",
    })


def _compression(inputs: MetricInputs) -> MetricValue:
    stream, rng, bootstrap = inputs.lexical, inputs.rng, inputs.bootstrap
    value = stream.compression_ratio()
    raw_bytes = stream.raw_bytes
    details: dict[str, Any] = {"gzip_level": lexical.GZIP_LEVEL, "raw_bytes": raw_bytes}
    ci = None
    groups = min(JACKKNIFE_GROUPS, stream.n_texts)
    if bootstrap > 0 and (few := _too_few(stream.n_texts)):
        details["ci_skipped"] = few
    elif bootstrap > 0 and groups > 1:
        if raw_bytes * groups <= COMPRESSION_CI_MAX_BYTES:
            texts = stream.kept_texts
            assert texts is not None  # kept while under the same budget (_keep_for_interval)
            # Random groups, text order kept: gzip's 32 KiB window makes the figure order-dependent.
            group_of = rng.permutation(len(texts)) % groups
            leave_out = np.array(
                [
                    lexical.compression_ratio(
                        [t for t, g in zip(texts, group_of.tolist(), strict=True) if g != k]
                    )
                    for k in range(groups)
                ]
            )
            ci = _jackknife_ci(value, leave_out)
            details["ci_method"] = f"delete-a-group jackknife, {groups} random groups, normal"
        else:
            details["ci_skipped"] = (
                f"interval would gzip {raw_bytes * groups} bytes (> {COMPRESSION_CI_MAX_BYTES})"
            )
    return _value("compression_ratio", value, ci95=ci, details=details)


def _keep_for_interval(raw_bytes: int, n_texts: int) -> bool:
    """Whether a stream keeps its raw texts: only while the compression interval would still be computed."""
    return raw_bytes * min(JACKKNIFE_GROUPS, n_texts) <= COMPRESSION_CI_MAX_BYTES


def _mean_cosine(inputs: MetricInputs) -> MetricValue:
    embeddings, bootstrap = inputs.embeddings, inputs.bootstrap
    assert embeddings is not None
    value = semantic.mean_pairwise_cosine(embeddings)
    ci = None
    details: dict[str, Any] = {"n": int(embeddings.shape[0]), "dim": int(embeddings.shape[1])}
    if bootstrap > 0 and (few := _too_few(int(embeddings.shape[0]))):
        details["ci_skipped"] = few
    elif bootstrap > 0:
        reps = semantic.mean_pairwise_cosine_bootstrap(embeddings, replicates=bootstrap, rng=inputs.rng)
        ci = _percentile_ci(reps)
        details["ci_method"] = f"bootstrap percentile, {bootstrap} replicates, self-pairs excluded"
    return _value("embedding_mean_cosine", value, ci95=ci, details=details)


def _vendi(inputs: MetricInputs) -> MetricValue:
    embeddings = inputs.embeddings
    assert embeddings is not None
    return _value("vendi", semantic.vendi_score(embeddings),
                  details={"q": 1, "kernel": "cosine", "max_possible": int(min(embeddings.shape))})


def _mauve(inputs: MetricInputs) -> MetricValue:
    try:
        value = reference.mauve_score(inputs.reference_embeddings, inputs.embeddings, seed=inputs.seed)
    except ImportError as exc:  # optional dependency: the other reference metrics still count
        return _undefined("mauve", str(exc))
    return _value("mauve", value,
                  details={"seed": inputs.seed, "num_buckets": "auto", "p": "reference", "q": "texts"})


def _knn(name: str) -> MetricCompute:
    """precision/recall share one k-NN computation, density/coverage another."""
    pair = "pr" if name in ("precision", "recall") else "dc"

    def compute(inputs: MetricInputs) -> MetricValue:
        emb, ref = inputs.embeddings, inputs.reference_embeddings
        assert emb is not None and ref is not None
        details = {"k": KNN_K, "n_texts": int(emb.shape[0]), "n_reference": int(ref.shape[0])}
        fn = reference.knn_precision_recall if pair == "pr" else reference.density_coverage
        try:
            result = inputs.shared(f"knn_{pair}", lambda: fn(ref, emb, k=KNN_K))
        except ValueError as exc:
            return _undefined(name, str(exc), **details)
        value = getattr(result, name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return _undefined(name, "undefined", **details)
        return _value(name, value, details=dict(details))

    return compute


_BUILTINS: list[MetricSpec] = [
    *(MetricSpec(f"distinct_{n}", "lexical",
                 f"unique {n}-grams / all {n}-grams over the corpus (higher = more varied wording)",
                 MORE_DIVERSE, _distinct(n)) for n in DISTINCT_ORDERS),
    MetricSpec("self_bleu", "lexical", "mean BLEU-4 of each text against all others (higher = texts repeat each other)",
               LESS_DIVERSE, _self_bleu),
    MetricSpec("compression_ratio", "lexical", "gzip size / raw size of the joined corpus (lower = more redundant)",
               MORE_DIVERSE, _compression),
    MetricSpec("embedding_mean_cosine", "semantic",
               "mean cosine similarity of all embedding pairs (higher = less diverse)", LESS_DIVERSE, _mean_cosine),
    MetricSpec("vendi", "semantic", "effective number of distinct examples, cosine kernel (higher = more diverse)",
               MORE_DIVERSE, _vendi),
    MetricSpec("mauve", "reference", "distributional closeness to the reference set, 0..1 (higher = closer)",
               MORE_DIVERSE, _mauve),
    MetricSpec("precision", "reference", "share of texts inside the reference manifold, k-NN (higher = more faithful)",
               MORE_DIVERSE, _knn("precision")),
    MetricSpec("recall", "reference", "share of the reference manifold reached by the texts, k-NN (higher = more coverage)",
               MORE_DIVERSE, _knn("recall")),
    MetricSpec("density", "reference", "how densely texts sit among reference neighbours (~1 = like the reference)",
               NO_DIRECTION, _knn("density")),
    MetricSpec("coverage", "reference", "share of reference examples with a text nearby (higher = more coverage)",
               MORE_DIVERSE, _knn("coverage")),
]

_SPECS: dict[str, MetricSpec] = {spec.name: spec for spec in _BUILTINS}

# Views of the built-in metrics (constants: they never include plugin metrics).
METRIC_GROUPS: dict[str, list[str]] = {g: [s.name for s in _BUILTINS if s.group == g] for g in GROUPS}
ALL_METRICS: list[str] = [s.name for s in _BUILTINS]
MEANINGS: dict[str, str] = {s.name: s.meaning for s in _BUILTINS}

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
                    direction: int = MORE_DIVERSE) -> MetricSpec:
    """Add a metric of your own (normally from a plugin's ``register(registry)``).

    ``compute(inputs: MetricInputs)`` returns a float, None (undefined) or a :class:`MetricValue`;
    raising ``ValueError`` makes the value undefined with the message as its reason. ``group``
    says what it needs (``lexical``: texts, ``semantic``: embeddings too, ``reference``: a
    reference set's embeddings too); ``direction`` is +1 when higher means more diverse, -1 when
    higher means less diverse, 0 when neither. Registering a name again replaces it.
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
    spec = MetricSpec(name=name, group=group, meaning=meaning, direction=direction,  # type: ignore[arg-type]
                      compute=compute, builtin=False)
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


def _percentile_ci(replicates: np.ndarray) -> tuple[float, float] | None:
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 2:
        return None
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def _jackknife_ci(
    estimate: float, leave_out: np.ndarray, *, bounds: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """Normal 95% interval estimate +- 1.96 se, se from delete-one (or delete-a-group) values.

    se^2 = (g-1)/g * sum (v_j - mean v)^2 over the g leave-out values (Efron & Tibshirani 1993).
    """
    return _jackknife_ci_parts(estimate, [leave_out], bounds=bounds)


def _jackknife_ci_parts(
    estimate: float, parts: Iterable[np.ndarray], *, bounds: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """:func:`_jackknife_ci` over leave-out values that arrive in parts (a stream's chunks).

    The parts' counts, means and sums of squared deviations are merged (Chan, Golub & LeVeque
    1979), so the values never need to be held together; one part gives exactly the one-array sums.
    """
    g, mean, m2 = 0, 0.0, 0.0
    for part in parts:
        k = int(part.shape[0])
        if not k:
            continue
        part_mean = float(part.mean())
        part_m2 = float(np.sum((part - part_mean) ** 2))
        if not g:
            g, mean, m2 = k, part_mean, part_m2
            continue
        delta = part_mean - mean
        total = g + k
        mean += delta * k / total
        m2 += part_m2 + delta * delta * g * k / total
        g = total
    if g < 2:
        return None
    se = math.sqrt((g - 1) / g * m2)
    lo, hi = estimate - Z95 * se, estimate + Z95 * se
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return lo, hi


def compute_set_metrics(
    texts: list[str],
    *,
    embeddings: np.ndarray | None = None,
    reference_embeddings: np.ndarray | None = None,
    select: set[str] | str | None = None,
    seed: int = 0,
    bootstrap: int = 200,
    self_bleu_sample: int | None = None,
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
                                   keep_texts=_keep_for_interval)
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
        return _undefined(spec.name, str(exc))
    if isinstance(result, MetricValue):
        return result
    if result is None or (isinstance(result, float) and math.isnan(result)):
        return _undefined(spec.name, "undefined for this input")
    return MetricValue(name=spec.name, value=float(result), meaning=spec.meaning)
