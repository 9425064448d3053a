"""Downstream utility: does a higher diversity score mean a model trained on the batch can do more?

    python -m eval.downstream --data ../shared/data --out eval/results/
    python -m eval.downstream --from-json eval/results/downstream.json   # re-render DOWNSTREAM.md

For every controlled corpus of the validation families (eval/corpora.py), one fixed, seeded, cheap
classifier (logistic regression on frozen MiniLM embeddings, through clusterdiv's own embedding stage
and cache) is trained on the corpus (labels = gold intents) and tested on the dataset's real held-out
split, which covers every intent. Macro recall counts an intent the corpus never shows as recall 0,
so a batch that lost its tail intents is penalised the way a trained model would be.

Each corpus is also scored with the default headline (raw-text representation, average-linkage at
cosine distance 0.65, normalised score at reference size 100: what `clusterdiv score` does by
default) and with every reference-free baseline; the figures are the Spearman and Kendall
correlations of each metric (sign-corrected) with downstream macro recall, per dataset and pooled,
with bootstrap intervals over corpora.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_CACHE = Path("eval/results/cache")

# ---------------------------------------------------------------- the classifier

_EMBEDDER = None


def _embedder():
    global _EMBEDDER
    if _EMBEDDER is None:
        from clusterdiv.modes.embed import Embedder

        _EMBEDDER = Embedder()
    return _EMBEDDER


def _as_cache(cache: Any):
    """A ModelCache: the one given, one opened at a path, or the eval cache (fixed, so reruns are free)."""
    from clusterdiv.core.cache import ModelCache

    if isinstance(cache, ModelCache):
        return cache
    return ModelCache(Path(cache) if cache is not None else DEFAULT_CACHE)


def embed(texts: Sequence[str], *, cache: Any = None) -> np.ndarray:
    """MiniLM vectors of texts through clusterdiv's embedding stage (L2-normalised, cached per text)."""
    from clusterdiv.modes.embed import embed_texts

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return embed_texts(list(texts), model=_embedder(), cache=_as_cache(cache))


def downstream_utility(train_texts: list[str], train_labels: list[str], test_texts: list[str],
                       test_labels: list[str], *, tail_labels: set[str] | None = None, seed: int = 0,
                       cache: Any = None, vectors: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Train a seeded logistic regression on frozen MiniLM vectors of the batch; test on real data.

    Returns `accuracy` (share of test examples right), `macro_recall` (mean recall over every intent
    in the *test* labels: an intent the batch never shows has recall 0), `tail_recall` (the same mean
    over `tail_labels`; NaN when none is given), `train_intents` and `test_intents_covered` (how many
    test intents the batch shows). A batch with a single label predicts that label everywhere; an
    empty batch predicts nothing (all zero). `vectors` (text -> vector) skips the embedding stage for
    texts already embedded (the study embeds every text once).
    """
    if len(train_texts) != len(train_labels) or len(test_texts) != len(test_labels):
        raise ValueError("texts and labels must have the same length")
    test_intents = sorted(set(test_labels))
    train_set = set(train_labels)
    if not test_texts:
        raise ValueError("the test split is empty")

    def vecs(texts: Sequence[str]) -> np.ndarray:
        if vectors is not None and all(t in vectors for t in texts):
            return np.vstack([vectors[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)
        return embed(texts, cache=cache)

    if not train_texts:
        pred = np.array([""] * len(test_texts), dtype=object)
    elif len(train_set) == 1:
        pred = np.array([train_labels[0]] * len(test_texts), dtype=object)
    else:
        from sklearn.linear_model import LogisticRegression

        X = vecs(train_texts).astype(np.float64)
        clf = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
        clf.fit(X, np.asarray(train_labels, dtype=object))
        pred = clf.predict(vecs(test_texts).astype(np.float64))
    gold = np.asarray(test_labels, dtype=object)
    correct = pred == gold
    recall = {i: float(correct[gold == i].mean()) for i in test_intents}
    tails = sorted(set(tail_labels or ()) & set(test_intents))
    return {
        "accuracy": float(correct.mean()),
        "macro_recall": float(statistics.fmean(recall.values())),
        "tail_recall": float(statistics.fmean(recall[i] for i in tails)) if tails else float("nan"),
        "train_intents": float(len(train_set)),
        "test_intents_covered": float(len(train_set & set(test_intents))),
    }


# ---------------------------------------------------------------- the correlation study

# +1: higher value = more diverse; -1: higher value = less diverse (as in eval/validate.py).
DIRECTION = {"headline": 1, "distinct_1": 1, "distinct_2": 1, "distinct_3": 1, "distinct_4": 1,
             "self_bleu": -1, "compression_ratio": 1, "embedding_mean_cosine": -1, "vendi": 1, "vendi_normalized": 1}
BASELINES = ("distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu", "compression_ratio",
             "embedding_mean_cosine", "vendi", "vendi_normalized")
METRICS = ("headline", *BASELINES)
DEFAULT_DATASETS = ("clinc150,hwu64,clinc150:banking,hint3:curekart,hwu64:iot,hint3:powerplay11,hint3:sofmattress,"
                    "hwu64:general,hwu64:play,hwu64:qa,clinc150:credit_cards,clinc150:travel,"
                    "clinc150:auto_and_commute,clinc150:home,clinc150:kitchen_and_dining,clinc150:meta,"
                    "clinc150:small_talk,clinc150:utility,clinc150:work")  # the saved study: every validation dataset
TAIL_SHARE = 0.2  # the last fifth of a repetition's intent order: the tail head-collapse removes first


def headline_score(texts: Sequence[str], vectors: dict[str, np.ndarray], *, threshold: float = 0.65,
                   reference_size: int = 100) -> tuple[float, int]:
    """The default `clusterdiv score` headline: raw-text modes at cosine distance `threshold`
    (average linkage), normalised to `reference_size`. Returns (score_normalized, n_modes)."""
    from clusterdiv.modes.represent import DEFAULT_KIND, DEFAULT_THRESHOLDS
    from eval.representations import GRID, ViewVectors, cut_scores, view_distances

    assert DEFAULT_KIND == "text" and threshold == DEFAULT_THRESHOLDS["text"], "headline is the shipped default"
    vv = ViewVectors(text=vectors, criteria={}, degenerate={})
    condensed, kept, _ = view_distances(list(texts), "text", vv)
    scores, labels = cut_scores(condensed, len(kept), reference_size=reference_size)
    i = GRID.index(round(threshold, 2))
    return float(scores[i]), int(len(set(np.asarray(labels[i]).tolist())))


def set_metrics(texts: Sequence[str], vectors: dict[str, np.ndarray], *, seed: int = 0,
                select: Sequence[str] = BASELINES) -> dict[str, float | None]:
    from clusterdiv.metrics.registry import compute_set_metrics

    values = compute_set_metrics(list(texts), embeddings=np.vstack([vectors[t] for t in texts]),
                                 select=set(select), seed=seed, bootstrap=0)
    return {k: v.value for k, v in values.items()}


def fill_missing_metrics(ds: Any, result: dict[str, Any], *, cache: Any, seed: int = 0) -> list[str]:
    """Add the baselines a saved study lacks (a metric added since it ran) to its rows, in place.

    The corpora are rebuilt (they are deterministic from the dataset and the saved settings) and
    only the missing metrics are computed, so adding a metric does not re-train every classifier.
    Returns the metrics filled in.
    """
    from eval.corpora import build_all

    missing = [m for m in BASELINES if any(m not in row for row in result["rows"])]
    if not missing:
        return []
    corpora = build_all(ds, n=result["n"], reps=result["reps"], families=sorted({r["family"] for r in result["rows"]}))
    by_key = {(c.family, c.level, c.rep): c for c in corpora}
    texts = sorted({r.text for c in corpora for r in c.rows})
    vectors = dict(zip(texts, embed(texts, cache=cache), strict=True))
    for row in result["rows"]:
        ct = [r.text for r in by_key[(row["family"], row["level"], row["rep"])].rows]
        values = set_metrics(ct, vectors, seed=seed, select=(*missing, "embedding_mean_cosine"))
        if abs(values["embedding_mean_cosine"] - row["embedding_mean_cosine"]) > 1e-5:  # the same corpus?
            raise ValueError(f"{ds.name}: rebuilt corpus {row['family']} {row['level']} rep {row['rep']} is not "
                             "the one the saved row was computed on")
        row.update({m: None if values[m] is None else round(float(values[m]), 6) for m in missing})
    return missing


def tail_of(order: Sequence[str]) -> set[str]:
    return set(order[len(order) - max(1, round(TAIL_SHARE * len(order))):])


def study_dataset(ds: Any, *, n: int, reps: int, families: Sequence[str], cache: Any, seed: int = 0) -> dict[str, Any]:
    """Every controlled corpus of the dataset: downstream figures, headline and baselines."""
    from eval.corpora import build_all, intent_order
    from eval.validate import dataset_n

    n = dataset_n(ds.name, n)
    corpora = build_all(ds, n=n, reps=reps, families=families)
    test_texts = [r.text for r in ds.heldout]
    test_labels = [r.intent for r in ds.heldout]
    started = time.perf_counter()
    texts = sorted({r.text for c in corpora for r in c.rows} | set(test_texts))
    vectors = dict(zip(texts, embed(texts, cache=cache), strict=True))
    embed_s = time.perf_counter() - started
    rows = []
    started = time.perf_counter()
    for i, c in enumerate(corpora):
        ct = [r.text for r in c.rows]
        util = downstream_utility(ct, [r.intent for r in c.rows], test_texts, test_labels,
                                  tail_labels=tail_of(intent_order(ds, c.rep)), seed=seed, vectors=vectors)
        head, modes = headline_score(ct, vectors)
        rows.append({"family": c.family, "level": c.level, "truth": c.truth, "rep": c.rep, "n": len(ct),
                     **{k: round(v, 6) for k, v in util.items()}, "headline": round(head, 6), "n_modes": modes,
                     **{k: (None if v is None else round(float(v), 6)) for k, v in set_metrics(ct, vectors).items()}})
        if (i + 1) % 25 == 0:
            print(f"  [{ds.name}] {i + 1}/{len(corpora)} corpora", file=sys.stderr, flush=True)
    return {"dataset": ds.name, "n": n, "reps": reps, "intents": len(ds.intents), "test_size": len(test_texts),
            "rows": rows, "cost": {"embed_s": round(embed_s, 1), "score_s": round(time.perf_counter() - started, 1),
                                   "corpora": len(corpora), "texts": len(texts)}}


def _rank_corr(x: Sequence[float], y: Sequence[float], kind: str) -> float:
    from scipy.stats import kendalltau, spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float((spearmanr if kind == "spearman" else kendalltau)(x, y).statistic)


def correlate(rows: Sequence[dict[str, Any]], metric: str, target: str = "macro_recall", *,
              n_boot: int = 1000, seed: int = 0, strata: Sequence[Any] | None = None) -> dict[str, Any]:
    """Sign-corrected Spearman and Kendall of a metric with a downstream figure, with 95% percentile
    bootstrap intervals over corpora (resampled within `strata`, e.g. datasets, when given)."""
    pairs = [(DIRECTION[metric] * r[metric], r[target], s) for r, s in
             zip(rows, strata if strata is not None else [0] * len(rows), strict=True)
             if r.get(metric) is not None and not math.isnan(r[target])]
    if len(pairs) < 3:
        return {"spearman": None, "kendall": None, "n": len(pairs)}
    x, y, s = (list(t) for t in zip(*pairs, strict=True))
    out: dict[str, Any] = {"n": len(pairs)}
    rng = np.random.default_rng(seed)
    groups: dict[Any, list[int]] = {}
    for i, g in enumerate(s):
        groups.setdefault(g, []).append(i)
    boots: dict[str, list[float]] = {"spearman": [], "kendall": []}
    for _ in range(n_boot):
        idx = [i for g in groups.values() for i in rng.choice(g, size=len(g), replace=True)]
        for kind in boots:
            v = _rank_corr([x[i] for i in idx], [y[i] for i in idx], kind)
            if not math.isnan(v):
                boots[kind].append(v)
    for kind in boots:
        point = _rank_corr(x, y, kind)
        out[kind] = None if math.isnan(point) else round(point, 4)
        b = boots[kind]
        out[f"{kind}_ci95"] = [round(float(np.percentile(b, 2.5)), 4), round(float(np.percentile(b, 97.5)), 4)] \
            if b else None
    return out


def analyse(results: Sequence[dict[str, Any]], *, n_boot: int = 1000) -> dict[str, Any]:
    """Per dataset and pooled: every metric against macro recall (and accuracy, tail recall);
    per family: the mean over repetitions of the within-family Spearman with macro recall."""
    per_dataset: dict[str, Any] = {}
    for r in results:
        per_dataset[r["dataset"]] = {
            target: {m: correlate(r["rows"], m, target, n_boot=n_boot if target == "macro_recall" else 0)
                     for m in METRICS}  # intervals for the headline target only: the bootstrap is the cost
            for target in ("macro_recall", "accuracy", "tail_recall")}
    all_rows = [row for r in results for row in r["rows"]]
    strata = [r["dataset"] for r in results for _ in r["rows"]]
    pooled = {target: {m: correlate(all_rows, m, target, n_boot=n_boot if target == "macro_recall" else 0,
                                    strata=strata) for m in METRICS}
              for target in ("macro_recall", "accuracy")}
    mean_of_datasets = {m: statistics.fmean(v) if (v := [per_dataset[d]["macro_recall"][m]["spearman"]
                                                          for d in per_dataset
                                                          if per_dataset[d]["macro_recall"][m]["spearman"]
                                                          is not None]) else None for m in METRICS}
    per_family: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in results:
        fam_groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in r["rows"]:
            fam_groups.setdefault((row["family"], row["rep"]), []).append(row)
        fams = sorted({f for f, _ in fam_groups})
        per_family[r["dataset"]] = {}
        for f in fams:
            per_family[r["dataset"]][f] = {}
            for m in METRICS:
                vals = [_rank_corr([DIRECTION[m] * g[m] for g in grp], [g["macro_recall"] for g in grp], "spearman")
                        for (ff, _), grp in fam_groups.items() if ff == f and all(g.get(m) is not None for g in grp)]
                vals = [v for v in vals if not math.isnan(v)]
                per_family[r["dataset"]][f][m] = round(statistics.fmean(vals), 4) if vals else None
    return {"per_dataset": per_dataset, "pooled": pooled, "mean_of_datasets": mean_of_datasets,
            "per_family": per_family}


def _f(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _cell(c: dict[str, Any], kind: str = "spearman") -> str:
    ci = c.get(f"{kind}_ci95")
    return f"{_f(c.get(kind))} [{_f(ci[0])}, {_f(ci[1])}]" if ci else _f(c.get(kind))


LABEL = {"headline": "**headline** (default score)", "embedding_mean_cosine": "embedding mean cosine",
         "compression_ratio": "compression ratio", "self_bleu": "self-BLEU"}


# eval/generate.py --name: the first run (one-shot regimes, 40 asked a recursion round), then the recursion
# at 120 asked a round: temperature 0.7 with two seeds, and temperature 0.2
GENERATOR_RUNS = ("generate", "generate_rounds", "generate_rounds_seed1", "generate_rounds_t02")


def recursion_png(name: str) -> str:
    return "generate_recursion.png" if name == "generate" else f"{name}_recursion.png"


def plots(saved: dict[str, Any], gens: dict[str, dict[str, Any]], out: Path) -> list[str]:
    """PNG plots (matplotlib, when installed): score vs downstream recall; metrics over recursion rounds."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    results = saved["results"]
    cols = min(5, len(results))
    rows_n = -(-len(results) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 3.0 * rows_n), squeeze=False)
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    for ax, r in zip(axes.flat, results, strict=False):
        fams = sorted({row["family"] for row in r["rows"]})
        for f in fams:
            pts = [(row["headline"], row["macro_recall"]) for row in r["rows"] if row["family"] == f]
            ax.scatter(*zip(*pts, strict=True), s=9, label=f)
        rho = saved["analysis"]["per_dataset"][r["dataset"]]["macro_recall"]["headline"]["spearman"]
        ax.set_title(f"{r['dataset']} (rho {_f(rho)})", fontsize=9)
        ax.set_xlabel("headline score_normalized", fontsize=8)
        ax.set_ylabel("downstream macro recall", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "downstream_scatter.png", dpi=110)
    plt.close(fig)
    made.append("downstream_scatter.png")
    for name, gen in gens.items():
        rec = [b for b in gen["batches"] if b["regime"].startswith("recursive_") or b["regime"] == "accumulated_pool"]
        if rec:
            keys = [("headline", "headline"), ("vendi", "Vendi"), ("coverage", "coverage of real data"),
                    ("macro_recall", "downstream macro recall"), ("tail_intents_present", "tail intents present")]
            fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0), squeeze=False)
            for ax, (k, title) in zip(axes[0], keys, strict=True):
                for regime in ("recursive_replace", "recursive_accumulate", "accumulated_pool"):
                    bs = sorted((b for b in rec if b["regime"] == regime or (regime == "accumulated_pool"
                                 and b["regime"] == "recursive_accumulate" and b["round"] == 0)),
                                key=lambda b: b["round"])
                    ax.plot([b["round"] for b in bs], [b.get(k, b.get("vs_real", {}).get(k)) for b in bs], marker="o",
                            label=regime.replace("recursive_", ""))
                    if k == "headline":
                        ax.fill_between([b["round"] for b in bs], [b["headline_ci95"][0] for b in bs],
                                        [b["headline_ci95"][1] for b in bs], alpha=0.15)
                ax.set_title(title, fontsize=9)
                ax.set_xlabel("round", fontsize=8)
                ax.tick_params(labelsize=7)
            axes[0][0].legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(out / recursion_png(name), dpi=110)
            plt.close(fig)
            made.append(recursion_png(name))
    return made


GENERATED_COLUMNS = (("headline", lambda b: b["headline"]), ("Vendi", lambda b: b["vendi"]),
                     ("Vendi normalised", lambda b: b.get("vendi_normalized")),
                     ("distinct-2", lambda b: b["distinct_2"]), ("intents present", lambda b: b["intents_present"]),
                     ("label agreement", lambda b: b["quality"]["label_agreement"]),
                     ("fluent pass", lambda b: b["quality"]["fluent_pass"]),
                     ("precision vs real", lambda b: b.get("vs_real", {}).get("precision")),
                     ("coverage vs real", lambda b: b.get("vs_real", {}).get("coverage")),
                     ("real modes held", lambda b: b.get("vs_real", {}).get("real_modes_held")))


def generated_batches(gen: dict[str, Any]) -> list[dict[str, Any]]:
    """The batches a generator wrote (every one but the real batch and the real round 0), scored."""
    return [b for b in gen["batches"] if b["regime"] != "real" and b["round"] != 0 and "accuracy" in b]


def generated_correlations(batches: Sequence[dict[str, Any]]) -> str:
    """Spearman of each column with downstream accuracy, over the batches that have the column."""
    cells = []
    for name, fn in GENERATED_COLUMNS:
        pairs = [(x, b["accuracy"]) for b in batches if (x := fn(b)) is not None]
        fewer = f" (the {len(pairs)} it is defined on)" if len(pairs) < len(batches) else ""
        cells.append(f"{name} {_f(_rank_corr(*zip(*pairs, strict=True), 'spearman') if pairs else None)}{fewer}")
    return ", ".join(cells)


def render_generate(gen: dict[str, Any], cost: dict[str, Any] | None) -> list[str]:
    from clusterdiv.metrics.builtins import KNN_K

    st = gen["settings"]
    asked = (f"{st['recursion_calls'] * gen['per_call']} examples asked for per recursion round at temperature "
             f"{st['recursion_temperature']}, seed {st['seed']}")
    L = [f"## Real generator batches ({', '.join(st['regimes'])}; {asked})", "",
         f"_From `{gen['command']}` ({gen['dataset']}, model `{gen['model']}`); intents: "
         + ", ".join(f"`{i}`" for i in gen["intents"]) + "; named tail intents (rare in the real round 0 of the "
         "recursion): " + ", ".join(f"`{t}`" for t in gen["tails"]) + "._", "",
         "Each batch: examples kept (unique), intents present, examples of each tail intent, the headline with "
         "its 95% interval, Vendi, distinct-2, self-BLEU, then the classifier trained on the batch and tested on "
         "the real held-out split of these intents (accuracy, macro recall, tail recall), and two per-example "
         "checks: the fluency filter's pass rate (3-40 words, mostly letters) and the share of examples a "
         "classifier trained on every real pool example of these intents labels as the intent they were asked "
         "for; then the share that are verbatim copies of real examples; last, against the real held-out split "
         f"(k-NN balls, k = {KNN_K}; `clusterdiv score --reference`): precision (share of the batch inside real data's manifold) and coverage "
         "(share of real examples with a batch example nearby), and the modes of batch and real data clustered "
         "together as `score --reference` does: real modes the batch holds, of all real modes. "
         "`accumulated_pool` round N is what accumulate trains on: real round 0 plus generated rounds 1..N.", "",
         "| regime | round | n (unique) | intents | tail examples | headline [95% CI] | Vendi | distinct-2 | self-BLEU "
         "| accuracy | macro recall | tail recall | fluent pass | label agreement | copied real | precision | coverage "
         "| real modes held |",
         "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
         "| ---: | ---: |"]
    for b in gen["batches"]:
        q, real = b.get("quality", {}), b.get("vs_real", {})
        ci = b.get("headline_ci95")
        tails = ", ".join(str(v) for v in b["tail_examples"].values())
        L.append(f"| {b['regime']} | {'' if b['round'] is None else b['round']} | {b['n']} ({b['unique']}) | "
                 f"{b['intents_present']} | {tails} | {_f(b.get('headline'), 3)} "
                 f"[{_f(ci[0] if ci else None, 3)}, {_f(ci[1] if ci else None, 3)}] | {_f(b.get('vendi'), 1)} | "
                 f"{_f(b.get('distinct_2'))} | {_f(b.get('self_bleu'))} | {_f(b.get('accuracy'))} | "
                 f"{_f(b.get('macro_recall'))} | {_f(b.get('tail_recall'))} | {_f(q.get('fluent_pass'))} | "
                 f"{_f(q.get('label_agreement'))} | {_f(q.get('copied_real'))} | "
                 f"{_f(real.get('precision'))} | {_f(real.get('coverage'))} | "
                 + (f"{real['real_modes_held']}/{real['real_modes']} |" if "real_modes" in real else "n/a |"))
    L += ["", "### Reading", ""]
    for regime in ("recursive_replace", "accumulated_pool", "recursive_accumulate"):
        bs = sorted((b for b in gen["batches"] if b["regime"] == regime or (b["regime"] == "recursive_accumulate"
                     and b["round"] == 0 and regime == "accumulated_pool")), key=lambda b: b["round"])
        if len(bs) < 2:
            continue
        lo, hi = bs[0]["headline_ci95"]
        side_of = {r: ("below" if h < lo else "above" if h > hi else "inside")
                   for r, h in ((b["round"], b["headline"]) for b in bs[1:])}
        where = {side: [str(r) for r, s in side_of.items() if s == side] for side in ("below", "inside", "above")}
        steps = [b["headline"] < a["headline"] for a, b in zip(bs[1:], bs[2:], strict=False)]
        L.append(f"- `{regime}`: headline " + " → ".join(_f(b["headline"], 3) for b in bs)
                 + f" (round 0 interval [{_f(lo, 3)}, {_f(hi, 3)}]; later rounds "
                 + ", ".join(f"{side} it: {', '.join(r) or 'none'}" for side, r in where.items())
                 + f"; lower than the round before in {sum(steps)} of the {len(steps)} steps from round 1)"
                 + "; intents present "
                 + " → ".join(str(b["intents_present"]) for b in bs) + "; tail intents present "
                 + " → ".join(str(b["tail_intents_present"]) for b in bs) + "; downstream macro recall "
                 + " → ".join(_f(b.get("macro_recall")) for b in bs) + "; coverage of real data "
                 + " → ".join(_f(b.get("vs_real", {}).get("coverage")) for b in bs) + "; real modes held "
                 + " → ".join(f"{b['vs_real']['real_modes_held']}/{b['vs_real']['real_modes']}"
                              if "real_modes" in b.get("vs_real", {}) else "n/a" for b in bs) + ".")
    generated = generated_batches(gen)
    if len(generated) >= 4:
        L.append(f"- Over the {len(generated)} generated batches, Spearman with downstream accuracy: "
                 + generated_correlations(generated) + ".")
    if cost:
        L += ["", f"Cold cost of the generation: {cost['model_calls']} model calls (attempts), {cost['failures']} "
              f"failed answers, {cost['completion_tokens']} completion tokens, {cost['llm_s']:.0f} s of LLM time on "
              "the shared 2-core CPU (~" + f"{cost['llm_s'] / max(1, cost['model_calls']):.0f}"
              " s per call under load); a rerun is served from the cache (0 calls) and writes the same JSON."
              + (f" ({cost['note']}.)" if cost.get("note") else "")]
    return L


def render(source: Path, markdown: Path) -> str:
    """DOWNSTREAM.md from the saved JSON (`source`, and generate.json beside it when it exists)."""
    saved = json.loads(source.read_text())
    out = source.parent
    gens = {name: json.loads((out / f"{name}.json").read_text()) for name in GENERATOR_RUNS
            if (out / f"{name}.json").exists()}
    gen_costs = {name: json.loads((out / f"{name}_cost.json").read_text()) for name in gens
                 if (out / f"{name}_cost.json").exists()}
    meta, results, a = saved["meta"], saved["results"], saved["analysis"]
    cost_path = source.parent / "downstream_cost.json"
    costs = json.loads(cost_path.read_text()) if cost_path.exists() else {}
    datasets = [r["dataset"] for r in results]
    pngs = plots(saved, gens, out)
    L = ["# Does a higher score mean better training data?", "",
         "_Generated from saved JSON by `python -m eval.downstream --from-json eval/results/downstream.json` "
         "(raw results: `eval/results/downstream.json`, `eval/results/generate.json`); do not edit by hand._", "",
         "## Protocol", "",
         f"- Corpora: every controlled corpus of the validation families ({', '.join(meta['families'])}; "
         f"eval/corpora.py), {meta['n']} real examples each (60 for HINT3), {meta['reps']} repetitions.",
         f"- Downstream: {meta['classifier']}, trained on the corpus with gold intents as labels, tested on the "
         "dataset's real held-out split (10 per intent, every intent). Macro recall counts an intent the "
         "corpus lacks as 0; tail recall is the macro recall over the last fifth of each repetition's intent "
         "order (the intents head collapse removes first).",
         f"- Headline: {meta['headline']} (what `clusterdiv score` does by default). Baselines at their own "
         "definitions, sign-corrected so that higher means more diverse (self-BLEU and mean cosine negated).",
         f"- Cells: Spearman of the metric with downstream macro recall over all corpora of the dataset, with "
         f"95% percentile bootstrap intervals over corpora ({meta['boot']} resamples; pooled: resampled within "
         "each dataset).", ""]
    md = a["mean_of_datasets"]
    rho = {m: {d: a["per_dataset"][d]["macro_recall"][m]["spearman"] for d in datasets} for m in METRICS}
    everywhere = [m for m in METRICS if md[m] is not None and all(v is not None for v in rho[m].values())]
    best = max(everywhere, key=lambda m: md[m])  # means over different datasets are not comparable
    partial = []
    for m in METRICS:
        have = [d for d in datasets if rho[m][d] is not None]
        if m not in everywhere and have:
            partial.append(f"`{m}` is n/a on {', '.join(d for d in datasets if d not in have)} (corpora below its "
                           f"reference size); over the {len(have)} others it averages {_f(statistics.fmean(rho[m][d] for d in have))}"
                           f", the headline {_f(statistics.fmean(rho['headline'][d] for d in have))}")
    h = rho["headline"]
    beaten = {d: [m for m in BASELINES if (v := rho[m][d]) is not None and v > h[d]] for d in datasets}
    L += ["## Reading", "",
          "- Headline Spearman with downstream macro recall: " + ", ".join(f"{d} {_f(h[d])}" for d in datasets)
          + f"; at least 0.9 on {sum(1 for d in datasets if h[d] is not None and h[d] >= 0.9)} of {len(datasets)} "
          "datasets.",
          f"- Best mean over datasets: `{best}` ({_f(md[best])}; headline {_f(md['headline'])}, Vendi "
          f"{_f(md['vendi'])}, distinct-2 {_f(md['distinct_2'])})" + "".join(f"; {p}" for p in partial) + ".",
          "- Baselines above the headline: " + ("; ".join(f"{d}: {', '.join(v)}" for d, v in beaten.items() if v)
                                                or "none") + f" ({sum(1 for v in beaten.values() if v)} of "
          f"{len(datasets)} datasets; Vendi above it on {sum('vendi' in v for v in beaten.values())}).",
          "- The pooled row ranks corpora of different datasets against each other, and each dataset's test "
          "covers a different set of intents: a corpus holding all 15 intents of one CLINC150 domain scores low "
          "(its intents are close in text space) yet reaches high recall on its 15-intent test, while a more "
          "diverse corpus holding 25 of CLINC150's 150 intents reaches low recall. Every metric is near zero "
          "there; the mean of the per-dataset figures is the summary that means something.", ""]
    SHORT = {"headline": "**headline**", "embedding_mean_cosine": "mean cosine", "compression_ratio": "compression",
             "vendi_normalized": "vendi (normalised)",
             "self_bleu": "self-BLEU"}
    head = "| dataset | " + " | ".join(SHORT.get(m, m) for m in METRICS) + " |"
    L += ["## Every metric against downstream macro recall (Spearman [95% CI])", "", head,
          "| --- |" + " --- |" * len(METRICS)]
    for d in datasets:
        L.append(f"| {d} | " + " | ".join(_cell(a["per_dataset"][d]["macro_recall"][m]) for m in METRICS) + " |")
    L.append("| pooled | " + " | ".join(_cell(a["pooled"]["macro_recall"][m]) for m in METRICS) + " |")
    L.append("| **mean of datasets** | " + " | ".join(_f(a["mean_of_datasets"][m]) for m in METRICS) + " |")
    for target, kind, title in (("macro_recall", "kendall", "Kendall tau with downstream macro recall"),
                                ("accuracy", "spearman", "Spearman with downstream accuracy"),
                                ("tail_recall", "spearman", "Spearman with downstream tail-intent recall")):
        L += ["", f"### {title}", "", head, "| --- |" + " ---: |" * len(METRICS)]
        for d in datasets:
            L.append(f"| {d} | " + " | ".join(_f(a["per_dataset"][d][target][m][kind]) for m in METRICS) + " |")
        if target in a["pooled"]:
            L.append("| pooled | " + " | ".join(_f(a["pooled"][target][m][kind]) for m in METRICS) + " |")
    fams = meta["families"]
    L += ["", "## Within each family (mean over datasets and repetitions of Spearman with macro recall)", "",
          "Inside one family the corpora differ only in the controlled variable; across families they differ "
          "in kind. A metric can order one family right and still misplace families against each other.", "",
          "| metric | " + " | ".join(fams) + " |", "| --- |" + " ---: |" * len(fams)]
    for m in METRICS:
        cells = []
        for f in fams:
            vals = [a["per_family"][d][f][m] for d in datasets if f in a["per_family"][d]
                    and a["per_family"][d][f][m] is not None]
            cells.append(_f(statistics.fmean(vals)) if vals else "n/a")
        L.append(f"| {LABEL.get(m, m)} | " + " | ".join(cells) + " |")
    if "downstream_scatter.png" in pngs:
        L += ["", "![headline vs downstream macro recall](results/downstream_scatter.png)"]
    if len(gens) > 1:
        pooled = [b for gen in gens.values() for b in generated_batches(gen)]
        L += ["", "## Every real-generator batch together", "",
              f"Spearman with downstream accuracy over the {len(pooled)} generated batches of the {len(gens)} runs "
              f"below ({', '.join(f'`{n}`' for n in gens)}): " + generated_correlations(pooled) + "."]
    for name, gen in gens.items():
        L += [""] + render_generate(gen, gen_costs.get(name))
        if recursion_png(name) in pngs:
            L += ["", f"![metrics over recursion rounds](results/{recursion_png(name)})"]
    L += ["", "## Commands and cost", "", "```",
          meta.get("command", "python -m eval.downstream --data ../shared/data --datasets " + ",".join(datasets)),
          *(gen["command"] for gen in gens.values()),
          "python -m eval.downstream --from-json eval/results/downstream.json   # this page, no model calls",
          "```", "",
          "- Controlled corpora: no LLM; MiniLM embeddings through clusterdiv's cache. "
          + "; ".join(f"{r['dataset']}: {c['corpora']} corpora, {c['texts']} texts, "
                      f"{c['score_s']:.0f} s to train, test and score" for r in results
                      if (c := r.get("cost") or costs.get(r["dataset"])))
          + f"; correlations and bootstrap {costs.get('analysis_s', meta.get('analysis_s', 0)):.0f} s "
          "(2 CPU cores shared with other jobs)."]
    text = "\n".join(L) + "\n"
    markdown.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> None:
    from eval.corpora import FAMILIES, load_datasets

    parser = argparse.ArgumentParser(description="Downstream utility of controlled corpora vs every diversity metric")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("eval/results"))
    parser.add_argument("--markdown", type=Path, default=Path("eval/DOWNSTREAM.md"))
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--from-json", type=Path, default=None, help="re-render from a saved downstream.json")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
    else:
        from clusterdiv.core.cache import ModelCache

        cache = ModelCache(args.cache_dir)
        meta = {"command": " ".join(["python -m eval.downstream", *(argv if argv is not None else sys.argv[1:])]),
                "n": args.n, "reps": args.reps, "families": args.families.split(","), "boot": args.boot,
                "classifier": "sklearn LogisticRegression(C=10, max_iter=2000, random_state=0) on MiniLM vectors",
                "headline": "text representation, average linkage, cosine distance 0.65, reference size 100",
                "tail_share": TAIL_SHARE}
        # resumable: a dataset already studied with the same settings (in the saved or the partial JSON) is
        # reused; every number is deterministic from the cache, so recomputing it would give the same rows
        same = ("n", "reps", "families")
        done: dict[str, Any] = {}
        for f in (args.out / "downstream.json", args.out / "downstream_partial.json"):
            if f.exists():
                old = json.loads(f.read_text())
                if all(old["meta"].get(k) == meta[k] for k in same):
                    done.update({r["dataset"]: r for r in old["results"]})
        results = []
        for ds in load_datasets(args.data, args.datasets):
            if ds.name in done:
                if filled := fill_missing_metrics(ds, done[ds.name], cache=cache):
                    print(f"== {ds.name}: added {', '.join(filled)} to the saved rows", file=sys.stderr, flush=True)
                results.append(done[ds.name])
                continue
            print(f"== {ds.name}: {len(ds.intents)} intents, {len(ds.heldout)} test", file=sys.stderr, flush=True)
            results.append(study_dataset(ds, n=args.n, reps=args.reps, families=meta["families"], cache=cache))
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "downstream_partial.json").write_text(json.dumps({"meta": meta, "results": results}))
        started = time.perf_counter()
        analysis = analyse(results, n_boot=args.boot)
        args.out.mkdir(parents=True, exist_ok=True)
        # timings vary from run to run: kept apart, so downstream.json is the same on every rerun
        cost_file = args.out / "downstream_cost.json"
        costs = json.loads(cost_file.read_text()) if cost_file.exists() else {}
        for r in results:
            if "cost" in r:
                costs[r["dataset"]] = r.pop("cost")
        costs["analysis_s"] = round(time.perf_counter() - started, 1)
        cost_file.write_text(json.dumps(costs, indent=1, sort_keys=True))
        meta.pop("command")  # how it was called is not a result (and differs between a run and its resume)
        saved = {"meta": meta, "results": results, "analysis": analysis}
        (args.out / "downstream.json").write_text(json.dumps(saved, indent=1, sort_keys=True))
        (args.out / "downstream_partial.json").unlink(missing_ok=True)
    print(render(args.from_json or args.out / "downstream.json", args.markdown))


if __name__ == "__main__":
    main()
