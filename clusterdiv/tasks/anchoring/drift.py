"""Shelf life: is a synthetic batch still a good stand-in for fresh real data?

Real traffic moves (new products, new phrasing, new intents), so a batch generated to match last
quarter's data goes stale even though nothing in it changed. `drift` compares the batch with a
fresh real sample on three kinds of evidence and gives one verdict:

* MAUVE (distributional closeness), k-NN recall and coverage (how much of the fresh real data
  the batch still reaches), precision and density for context: the reference metrics of
  `clusterdiv.metrics.registry`, on MiniLM embeddings of the raw texts;
* per-mode share shifts in one shared clustering of batch + fresh data, summarised as the total
  variation distance between the two share vectors (noise points pooled as one bin), with the
  modes the batch misses or over-produces (the tested flags of `modes.shares`, at `alpha`). `cluster_on="text"` (default) clusters the raw text
  embeddings (no LLM), the representation the held-out validation chose for `score`;
  `cluster_on="criteria"` clusters LLM criteria; both are one `build_mode_space` of batch + fresh data;
  `cluster_on=None` skips it;
* an optional `expires_after` date: past it, the verdict is `stale` whatever the metrics say.

Verdict thresholds (`VERDICT_THRESHOLDS`; the verdict is the worst of the indicators):

==================  ========  ==========  =====================================================
indicator           fresh if  drifting if stale otherwise
==================  ========  ==========  =====================================================
mauve               >= 0.90   >= 0.50     same-distribution samples of a few hundred score
                                          0.9-1.0; a quarter of the batch off-distribution
                                          drops MAUVE well below 0.9
precision           >= 0.70   >= 0.40     k-NN precision: batch examples inside the fresh
                                          real manifold
coverage            >= 0.70   >= 0.40     share of fresh real examples with a batch example
                                          among their 5 nearest neighbours
recall              >= 0.60   >= 0.30     k-NN recall of the fresh real manifold
share_shift (TV)    <= 0.08   <= 0.25     half the summed absolute share differences per mode
==================  ========  ==========  =====================================================

MAUVE is noisy on small sets (it k-means-quantises both sets; the seed is recorded); below 50
examples on either side its verdict is only advisory and the note says so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import numpy as np

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import ProgressReporter
from clusterdiv.llm.structured import LLMSettings
from clusterdiv.modes.cluster import ClusterParams
from clusterdiv.modes.embed import DEFAULT_EMBEDDING_MODEL, Embedder, embed_texts
from clusterdiv.modes.run import RunContext
from clusterdiv.modes.shares import DEFAULT_ALPHA, LACKING, check_alpha, flag_test_text
from clusterdiv.reports.report import Report
from clusterdiv.reports.sections import Drift, Indicator, ShareShift, Verdict
from clusterdiv.tasks.anchoring._common import load_examples

# name: (fresh bound, drifting bound); which way is better is the metric registry's direction
VERDICT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "mauve": (0.90, 0.50),
    "precision": (0.70, 0.40),
    "coverage": (0.70, 0.40),
    "recall": (0.60, 0.30),
    "share_shift": (0.08, 0.25),
}
SHARE_SHIFT_HIGHER_IS_BETTER = False
"""`share_shift` is drift's own indicator, not a registry metric: a larger shift is worse."""
NULL_PERMUTATIONS = 200
MIN_FOR_MAUVE = 50
_RANK = {"fresh": 0, "drifting": 1, "stale": 2}


def higher_is_better(name: str) -> bool:
    """Whether a higher value of indicator `name` is fresher: the registry's direction of the metric."""
    from clusterdiv.metrics.registry import MORE_DIVERSE, direction

    return SHARE_SHIFT_HIGHER_IS_BETTER if name == "share_shift" else direction(name) == MORE_DIVERSE


def _status(name: str, value: float | None) -> Verdict | Literal["n/a"]:
    if value is None:
        return "n/a"
    fresh, drifting = VERDICT_THRESHOLDS[name]
    higher = higher_is_better(name)
    if higher:
        return "fresh" if value >= fresh else "drifting" if value >= drifting else "stale"
    return "fresh" if value <= fresh else "drifting" if value <= drifting else "stale"


def _bounds(name: str) -> tuple[str, str]:
    fresh, drifting = VERDICT_THRESHOLDS[name]
    higher = higher_is_better(name)
    return ((f">= {fresh}", f"< {drifting}") if higher else (f"<= {fresh}", f"> {drifting}"))


def _parse_date(value: Any, what: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise InputError(f"{what} must be a date like 2027-01-31, got {value!r}") from exc


def share_shift(batch_counts: np.ndarray, reference_counts: np.ndarray, *, seed: int = 0
                ) -> tuple[float, float, float]:
    """Total variation distance of per-mode shares, its null level, and the excess over the null.

    Counts are per shared mode (noise pooled as one bin). Two samples of the SAME distribution
    already differ by sampling noise, more so with many small modes, so the raw distance is
    compared with its value when the pooled points are split at random into sets of the same
    sizes (mean over `NULL_PERMUTATIONS` seeded multivariate-hypergeometric splits). The
    indicator is the excess, tv - null, floored at 0.
    """
    b = np.asarray(batch_counts, dtype=np.int64)
    r = np.asarray(reference_counts, dtype=np.int64)
    nb, nr = int(b.sum()), int(r.sum())
    if nb == 0 or nr == 0:
        raise ValueError("both sets need at least one clustered example")
    tv = float(0.5 * np.abs(b / nb - r / nr).sum())
    rng = np.random.default_rng(seed)
    pooled = b + r
    null = []
    for _ in range(NULL_PERMUTATIONS):
        draw = rng.multivariate_hypergeometric(pooled, nb)
        null.append(0.5 * np.abs(draw / nb - (pooled - draw) / nr).sum())
    null_tv = float(np.mean(null))
    excess = max(0.0, tv - null_tv)
    return tv, null_tv, excess


def _counts_from_rows(rows: list[dict[str, Any]], n_batch: int, n_reference: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-mode counts from `cluster_shares` rows, with the noise points as one extra bin."""
    b = [r["batch_count"] for r in rows]
    r_ = [r["reference_count"] for r in rows]
    return np.array(b + [n_batch - sum(b)]), np.array(r_ + [n_reference - sum(r_)])


def _first_texts(space: Any) -> dict[int, str]:
    """Each mode's summary in drift: its first member's text, clipped (noise included)."""
    first: dict[int, str] = {}
    for row in space.clustered():
        text = row.example.text
        first.setdefault(row.mode, text if len(text) <= 60 else text[:57] + "...")
    return {k: f"e.g. {v!r}" for k, v in first.items()}


def drift(
    batch: Any,
    reference: Any,
    *,
    expires_after: dt.date | str | None = None,
    as_of: dt.date | str | None = None,
    cluster_on: Literal["criteria", "text"] | None = "text",
    cluster_params: ClusterParams | None = None,
    model: LLMSettings | str | None = None,
    embedding_model: str | Embedder = DEFAULT_EMBEDDING_MODEL,
    seed: int = 0,
    top_shifts: int = 10,
    alpha: float = DEFAULT_ALPHA,
    cache: ModelCache | None = None,
    progress: ProgressReporter | None = None,
    load_options: dict[str, Any] | None = None,
    reference_load_options: dict[str, Any] | None = None,
) -> Report:
    """Compare a batch with fresh real data and say whether it is fresh, drifting or stale.

    See the module docstring for the indicators and thresholds. `as_of` (default: today) is the
    date the expiry is checked against; pass it for a reproducible report. `alpha` is the false
    discovery rate of the test that lists a mode in `missing_modes` (modes.shares, as `score --reference`).
    """
    alpha = check_alpha(alpha)
    if cluster_on not in ("criteria", "text", None):
        raise InputError(f"cluster_on must be 'criteria', 'text' or None, got {cluster_on!r}")
    expiry = _parse_date(expires_after, "expires_after")
    today = _parse_date(as_of, "as_of") or dt.date.today()
    with RunContext(cache=cache, progress=progress) as run:
        with run.stage("load"):
            loaded = load_examples(batch, role="batch", load_options=load_options)
            ref = load_examples(reference, role="reference", load_options=reference_load_options)

        with run.stage("embed"):
            embedder = run.embedder(embedding_model)
            X = embed_texts(loaded.texts, model=embedder, cache=run.cache)
            R = embed_texts(ref.texts, model=embedder, cache=run.cache)

        from clusterdiv.metrics.registry import compute_set_metrics

        with run.stage("metrics"):
            values = compute_set_metrics(
                loaded.texts, embeddings=X, reference_embeddings=R,
                select={"mauve", "precision", "recall", "density", "coverage"}, seed=seed, bootstrap=0,
            )
            metrics = {name: v.model_dump(mode="json") for name, v in values.items()}

        notes: list[str] = []
        shifts: list[ShareShift] = []
        tv = null_tv = excess = None
        n_clustered: tuple[int, int] | None = None
        how: str | None = None
        missing: list[int] = []
        over: list[int] = []
        rows: list[dict[str, Any]] = []
        with run.stage("cluster"):
            if cluster_on is not None:
                from clusterdiv.modes.config import ScoreConfig
                from clusterdiv.modes.modespace import BATCH, REFERENCE, build_mode_space
                from clusterdiv.modes.shares import cluster_shares
                from clusterdiv.tasks.score import cluster_shares_section

                settings = LLMSettings()  # the text representation asks no LLM
                if cluster_on == "criteria":
                    settings = model if isinstance(model, LLMSettings) else LLMSettings(**({"model": model} if model else {}))
                config = ScoreConfig(llm=settings, embedding_model=embedder.spec.name, seed=seed, alpha=alpha,
                                     representation={"kind": cluster_on}, clustering=cluster_params or ClusterParams())
                space = build_mode_space({BATCH: loaded.examples, REFERENCE: ref.examples}, config, run, timed=False)
                n_clustered = (len(space.clustered(BATCH)), len(space.clustered(REFERENCE)))
                if cluster_on == "text":
                    clustered = space.clustered()
                    rows = [r.model_dump(mode="json") for r in cluster_shares(
                        space.labels(), [r.group == BATCH for r in clustered], [r.example.id for r in clustered],
                        summaries=_first_texts(space), alpha=alpha)]
                    how = (f"raw text embeddings of batch + reference, {space.clustering.method} "
                           f"({space.clustering.n_clusters} shared clusters; no LLM)")
                else:
                    rows = cluster_shares_section(space, alpha=alpha)["clusters"]
                    how = (f"shared clustering of LLM criteria ({settings.model}), {space.clustering.method}, "
                           f"{space.clustering.n_clusters} shared clusters")
                    if run.stats.failures:
                        notes.append(f"{run.stats.failures} examples failed criteria extraction and are left "
                                     "out of the shares")
            if n_clustered is not None and min(n_clustered) > 0:
                tv, null_tv, excess = share_shift(*_counts_from_rows(rows, *n_clustered), seed=seed)
        for r in rows:
            shifts.append(ShareShift(cluster_id=r["cluster_id"], batch_share=r["batch_share"],
                                     reference_share=r["reference_share"],
                                     shift=r["batch_share"] - r["reference_share"], flag=r["flag"],
                                     criteria_summary=r.get("criteria_summary", "")))
            if r["flag"] in LACKING:
                missing.append(r["cluster_id"])
            elif r["flag"] in ("over", "batch_only"):
                over.append(r["cluster_id"])
        shifts.sort(key=lambda s: -abs(s.shift))

        indicators: list[Indicator] = []
        for name in ("mauve", "precision", "coverage", "recall"):
            value = metrics.get(name, {}).get("value")
            fresh_if, stale_if = _bounds(name)
            indicators.append(Indicator(name=name, value=value, status=_status(name, value), fresh_if=fresh_if,
                                        stale_if=stale_if, meaning=metrics.get(name, {}).get("meaning", "")))
        fresh_if, stale_if = _bounds("share_shift")
        indicators.append(Indicator(
            name="share_shift", value=excess, status=_status("share_shift", excess), fresh_if=fresh_if,
            stale_if=stale_if,
            meaning="per-mode share distance beyond sampling noise: TV - mean TV of random splits"))
        if min(len(loaded.examples), len(ref.examples)) < MIN_FOR_MAUVE:
            notes.append(f"fewer than {MIN_FOR_MAUVE} examples on one side: MAUVE is noisy at this size")
        counted = [i for i in indicators if i.status != "n/a"]
        verdict: Verdict = max((i.status for i in counted), key=lambda s: _RANK[s], default="fresh")  # type: ignore
        reasons = [f"{i.name} {i.value:.3f} is {i.status} (fresh if {i.fresh_if}, stale if {i.stale_if})"
                   for i in sorted(counted, key=lambda i: -_RANK[i.status]) if i.status != "fresh"]
        if not counted:
            notes.append("no indicator could be computed; the verdict says nothing about the data")
        expired = bool(expiry is not None and today > expiry)
        if expired:
            verdict = "stale"
            reasons.insert(0, f"expired: past its expires_after date {expiry.isoformat()} (as of {today.isoformat()})")
        if not reasons:
            reasons = ["every indicator is within its fresh bound"]
        section = Drift(
            verdict=verdict, reasons=reasons, n_batch=len(loaded.examples), n_reference=len(ref.examples),
            reference=ref.name, embedding_model=embedder.spec.name, seed=seed, indicators=indicators,
            metrics=metrics, share_shift=excess, share_tv=tv, share_tv_null=null_tv, clustering=how, shifts=shifts[:top_shifts],
            missing_modes=missing, over_produced_modes=over,
            flag_test=flag_test_text(alpha) if rows else "",
            expires_after=expiry.isoformat() if expiry else None, as_of=today.isoformat(), expired=expired,
            days_left=(expiry - today).days if expiry else None,
            thresholds={k: {"fresh": f, "drifting": d, "higher_is_better": higher_is_better(k)}
                        for k, (f, d) in VERDICT_THRESHOLDS.items()},
            notes=notes,
        )
        return Report(command="drift", source=loaded.source, content_hash=loaded.content_hash,
                      n_input=len(loaded.examples), skipped=loaded.skipped, drift=section,
                      timings=run.finish(tokens=False))
