"""Issue 31 item 1, as a study: can the mode resolution be learned from a domain's real data, unsupervised?

    OMP_NUM_THREADS=1 python -m eval.resolution --data ../shared/data      # measure, then render
    python -m eval.resolution --from-json eval/results/resolution.json    # render only (no model, no data)

For every within-domain dataset of the intent-count study (eval/CEILING.md's first table) a fixed-size
sample of the domain's real utterances (`--n-real`, all of them where the domain holds fewer; labels
unused) is embedded (MiniLM through the eval cache, eval/results/cache) and clustered the way the
headline clusters (average linkage on cosine distance), and at every cut of the 17-threshold grid
0.10-0.90 (eval.representations.GRID) several unsupervised criteria are measured:

* **stability (ARI)** (Ben-Hur et al. 2002; Lange et al. 2004): mean adjusted Rand index between the
  full sample's clustering, restricted to a subsample, and the subsample's own clustering at that cut
  (`--boots` subsamples without replacement at each share of `--shares`). Agreement is trivially 1 at
  both ends of a distance grid (all singletons, one cluster), so a cut is eligible only where at least a
  share `a` of the points lie in clusters of two or more and no cluster holds half of them;
* **stable modes / stable mass** (Hennig 2007): each cluster's mean Jaccard with its best match in the
  subsamples; the cut with the most clusters of at least `m` points whose Jaccard is >= `g` (ties: the
  coarsest), or with the largest share of points in such clusters of two or more (a cluster holding half
  of the points or more not counted); other criteria break ties toward the finest cut;
* **silhouette** (Rousseeuw 1987): mean cosine silhouette of the clustering;
* **k-NN scale**: the cut nearest to `x` times the `q`-quantile of the real data's k-th-neighbour distance;
* **gap statistic** (Tibshirani et al. 2001): within-cluster dispersion against references with every
  coordinate permuted independently (`--refs`), at the cut's own cluster count; the largest gap, or
  Tibshirani's one-standard-error rule;
* **HDBSCAN (EOM)** (Campello et al. 2013): the cut whose clustering agrees best (ARI, noise left out)
  with HDBSCAN's excess-of-mass clusters at `min_cluster_size` m;
* **count plateau**: the cut where the cluster count changes least between its two neighbouring cuts.

Each criterion's variant picks one cut per dataset from the real data alone; the pick is scored by the
intent-count Spearman of the headline at that cut on that dataset, read from the saved validation
studies (eval/results/validation.json and eval/results/fresh/validation.json, through eval.ceiling),
beside the shipped 0.65, one fixed cut chosen the same way (the `fixed cut` family) and the per-dataset
ceiling. A criterion's free parameters (and, for `any criterion`, which criterion) are chosen on the
CLINC150 domains and reported on HWU64 and HINT3, and chosen leave-one-source-out (eval.corpora's
sources) and reported on every held-out source; in-sample figures are shown apart. A diagnostic row,
`gold grain`, is not a candidate: it uses the labels (the cut whose clustering of the real sample agrees
best with the gold intents), to ask whether matching the domain's intent grain is even the right target.

`--sizes` adds a check of whether the right cut depends on corpus size: the intent-count family of the
CLINC150 domains rebuilt (eval.corpora) and scored (eval.representations.cut_scores) at other corpus sizes.

Raw measurements go to eval/results/resolution.json; eval/results/resolution.md is rendered from it.
Sources: CLINC150 (Larson et al. 2019, CC BY 3.0), HWU64 (Liu et al. 2019, CC BY 4.0), HINT3 (Arora et
al. 2020, ODbL 1.0 / DbCL 1.0), read from ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).parent / "results"
JSON_OUT = RESULTS / "resolution.json"
MD_OUT = RESULTS / "resolution.md"
BAR = 0.95  # issue 31: intent-count Spearman out of sample
BAR_COUNT = 20  # ... on at least 20 of the 24 datasets
SHIPPED = 0.65
SAVED_REPS = 3  # the validation study's repetitions (eval/results/validation.json meta)
TUNE_SOURCE = "clinc150"
EXCLUDED = {"hwu64:qa": "no measure of the texts reaches Spearman 0.5 there (eval/CEILING.md): corpora of more "
                        "intents are not more varied by any measure, so the issue's bar leaves it out"}
SHARES = (0.5, 0.8)
ARI_ELIGIBLE = (0.25, 0.5, 0.75)
STABLE_MIN = (2, 3, 5, 10)
STABLE_JACCARD = (0.6, 0.75, 0.9)
KNN_K = (1, 5, 10)
KNN_Q = (0.5, 0.75, 0.9)
KNN_X = (1.0, 1.5, 2.0, 3.0)
HDBSCAN_MIN = (3, 5, 10, 20)
FAMILY_ORDER = ("fixed cut", "silhouette", "stability (ARI)", "stable modes", "stable mass", "k-NN scale",
                "gap statistic", "HDBSCAN (EOM)", "count plateau")
# the variant each family's toy test uses (tests/test_eval_resolution.py); not a tuned choice
DEFAULT_VARIANT = {"silhouette": "silhouette", "stability (ARI)": "ari s=0.8 a=0.5",
                   "stable modes": "stable_modes s=0.8 m=10 g=0.75", "stable mass": "stable_mass s=0.8 g=0.75",
                   "k-NN scale": "knn k=5 q=0.75 x=2", "gap statistic": "gap max", "HDBSCAN (EOM)": "hdbscan m=5",
                   "count plateau": "plateau"}


def grid() -> tuple[float, ...]:
    from eval.representations import GRID

    return GRID


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


# ---------------------------------------------------------------- measuring the criteria on real data

def _square(X: np.ndarray) -> np.ndarray:
    D = 1.0 - np.clip(X @ X.T, -1.0, 1.0)
    np.fill_diagonal(D, 0.0)
    return np.maximum(D, 0.0)


def _tree(D: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    return linkage(squareform(D, checks=False), method="average")


def _cuts(Z: np.ndarray) -> list[np.ndarray]:
    from scipy.cluster.hierarchy import fcluster

    return [fcluster(Z, t=t, criterion="distance") for t in grid()]


def _jaccards(full: np.ndarray, sub: np.ndarray) -> dict[int, float]:
    """Hennig's cluster-wise Jaccard: each full cluster present in the subsample against its best match."""
    fu, fi = np.unique(full, return_inverse=True)
    su, si = np.unique(sub, return_inverse=True)
    M = np.zeros((len(fu), len(su)))
    np.add.at(M, (fi, si), 1.0)
    J = M / (M.sum(1, keepdims=True) + M.sum(0, keepdims=True) - M)
    return {int(c): float(J[i].max()) for i, c in enumerate(fu)}


def _dispersion(D: np.ndarray, labels: np.ndarray) -> float:
    """Tibshirani's W: sum over clusters of the within-cluster distance sum over twice the cluster size."""
    from scipy.sparse import csr_matrix

    _, lab = np.unique(labels, return_inverse=True)
    n, k = len(lab), int(lab.max()) + 1
    H = csr_matrix((np.ones(n), (np.arange(n), lab)), shape=(n, k))
    within = np.bincount(lab, weights=np.asarray(H.T @ D)[lab, np.arange(n)], minlength=k)
    return float((within / (2.0 * np.bincount(lab, minlength=k))).sum())


def measure(X: np.ndarray, *, seed: int = 0, boots: int = 20, refs: int = 10,
            gold: Sequence[str] | None = None) -> dict[str, Any]:
    """Every criterion's curve over the grid for one real sample X (unit vectors). Labels only for `gold`."""
    from scipy.cluster.hierarchy import fcluster
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    G = grid()
    n = len(X)
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    D = _square(X)
    full = _cuts(_tree(D))
    k = [int(len(np.unique(lab))) for lab in full]
    sizes = [np.bincount(np.unique(lab, return_inverse=True)[1]) for lab in full]
    nonsingleton = [float(s[s >= 2].sum() / n) for s in sizes]
    largest = [float(s.max() / n) for s in sizes]
    secs["linkage"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sil = [float(silhouette_score(D, lab, metric="precomputed")) if 2 <= kk <= n - 1 else None
           for lab, kk in zip(full, k, strict=True)]
    secs["silhouette"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    stability: dict[str, Any] = {}
    for share in SHARES:
        m = max(2, int(round(share * n)))
        ari = np.zeros((boots, len(G)))
        jac: list[dict[int, list[float]]] = [{} for _ in G]
        for b in range(boots):
            idx = np.sort(rng.choice(n, size=m, replace=False))
            sub = _cuts(_tree(D[np.ix_(idx, idx)]))
            for i in range(len(G)):
                ari[b, i] = adjusted_rand_score(full[i][idx], sub[i])
                for c, j in _jaccards(full[i][idx], sub[i]).items():
                    jac[i].setdefault(c, []).append(j)
        counts: dict[str, list[int]] = {}
        mass: dict[str, list[float]] = {}
        for g in STABLE_JACCARD:
            for mm in STABLE_MIN:
                counts[f"m={mm} g={g}"] = [0] * len(G)
            mass[f"g={g}"] = [0.0] * len(G)
        for i in range(len(G)):
            size_of = dict(zip(*np.unique(full[i], return_counts=True), strict=True))
            for c, js in jac[i].items():
                gamma, size = statistics.fmean(js), int(size_of[c])
                for g in STABLE_JACCARD:
                    if gamma >= g:
                        for mm in STABLE_MIN:
                            counts[f"m={mm} g={g}"][i] += size >= mm
                        if 2 <= size < n / 2:
                            mass[f"g={g}"][i] += size / n
        stability[f"s={share}"] = {"ari": [_r(x) for x in ari.mean(0)], "stable_modes": counts,
                                   "stable_mass": {key: [_r(x) for x in v] for key, v in mass.items()}}
    secs["stability"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    nn = np.sort(D + np.diag(np.full(n, np.inf)), axis=1)
    knn = {f"k={kk}": {f"q={q}": _r(float(np.quantile(nn[:, kk - 1], q))) for q in KNN_Q} for kk in KNN_K}
    secs["knn"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    log_w = [math.log(w) if (w := _dispersion(D, lab)) > 0 else None for lab in full]
    ref_log_w: list[list[float]] = [[] for _ in G]
    for _ in range(refs):
        R = np.column_stack([rng.permutation(X[:, j]) for j in range(X.shape[1])])
        R /= np.linalg.norm(R, axis=1, keepdims=True)
        DR = _square(R)
        ZR = _tree(DR)
        for i, kk in enumerate(k):
            if log_w[i] is not None:
                w = _dispersion(DR, fcluster(ZR, t=kk, criterion="maxclust"))
                if w > 0:
                    ref_log_w[i].append(math.log(w))
    gap = [statistics.fmean(r) - lw if lw is not None and len(r) == refs else None
           for lw, r in zip(log_w, ref_log_w, strict=True)]
    gap_se = [statistics.pstdev(r) * math.sqrt(1 + 1 / refs) if len(r) == refs else None for r in ref_log_w]
    secs["gap"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    hdb: dict[str, list[float | None]] = {}
    import hdbscan

    for mm in HDBSCAN_MIN:
        labels = hdbscan.HDBSCAN(min_cluster_size=mm, metric="euclidean",
                                 cluster_selection_method="eom").fit_predict(X.astype(np.float64))
        keep = labels >= 0
        found = len(set(labels[keep].tolist()))
        hdb[f"m={mm}"] = [_r(adjusted_rand_score(labels[keep], lab[keep])) if found >= 2 else None for lab in full]
        hdb[f"m={mm} clusters"] = found  # type: ignore[assignment]
    secs["hdbscan"] = time.perf_counter() - t0

    out = {"n": n, "k": k, "nonsingleton": [_r(x) for x in nonsingleton], "largest": [_r(x) for x in largest],
           "silhouette": [_r(x) for x in sil], "stability": stability, "knn": knn,
           "gap": [_r(x) for x in gap], "gap_se": [_r(x) for x in gap_se], "hdbscan": hdb,
           "seconds": {key: round(v, 3) for key, v in secs.items()}}
    if gold is not None:
        out["gold_ari"] = [_r(adjusted_rand_score(list(gold), lab)) for lab in full]
        out["gold_intents"] = len(set(gold))
    return out


# ---------------------------------------------------------------- picks: each variant's cut from the curves

def _argmax(values: Sequence[float | None], eligible: Sequence[bool] | None = None, *,
            coarsest: bool = False) -> float | None:
    """The grid cut with the largest value (ties: the finest, or the coarsest); None where no cut is eligible."""
    G = grid()
    best = None
    for i, v in enumerate(values):
        if v is None or (eligible is not None and not eligible[i]) or not math.isfinite(v):
            continue
        if best is None or v > values[best] + 1e-12 or (coarsest and v >= values[best] - 1e-12):
            best = i
    return None if best is None else G[best]


def _snap(x: float | None) -> float | None:
    G = grid()
    return None if x is None else min(G, key=lambda t: (abs(t - x), t))


def variants() -> dict[str, list[str]]:
    """family -> its variants (every setting of its free parameters), in a fixed order."""
    G = grid()
    return {
        "fixed cut": [f"fixed t={t:.2f}" for t in G],
        "silhouette": ["silhouette"],
        "stability (ARI)": [f"ari s={s} a={a}" for s in SHARES for a in ARI_ELIGIBLE],
        "stable modes": [f"stable_modes s={s} m={m} g={g}" for s in SHARES for m in STABLE_MIN for g in STABLE_JACCARD],
        "stable mass": [f"stable_mass s={s} g={g}" for s in SHARES for g in STABLE_JACCARD],
        "k-NN scale": [f"knn k={k} q={q} x={x:g}" for k in KNN_K for q in KNN_Q for x in KNN_X],
        "gap statistic": ["gap max", "gap 1-se"],
        "HDBSCAN (EOM)": [f"hdbscan m={m}" for m in HDBSCAN_MIN],
        "count plateau": ["plateau"],
    }


def _params(variant: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in variant.split()[1:] if "=" in p)


def pick(raw: dict[str, Any], variant: str) -> float | None:
    """The cut one variant chooses from a dataset's measured curves (None: the criterion gives no cut)."""
    G = grid()
    kind, p = variant.split()[0], _params(variant)
    n = raw["n"]
    if kind == "fixed":
        return float(p["t"])
    if kind == "silhouette":
        return _argmax(raw["silhouette"])
    if kind == "ari":
        st = raw["stability"][f"s={p['s']}"]
        ok = [ns is not None and ns >= float(p["a"]) and lg < 0.5
              for ns, lg in zip(raw["nonsingleton"], raw["largest"], strict=True)]
        return _argmax(st["ari"], ok)
    if kind == "stable_modes":
        # a count ties often: the coarsest cut holding the most stable modes (parsimony)
        return _argmax(raw["stability"][f"s={p['s']}"]["stable_modes"][f"m={p['m']} g={p['g']}"], coarsest=True)
    if kind == "stable_mass":
        return _argmax(raw["stability"][f"s={p['s']}"]["stable_mass"][f"g={p['g']}"])
    if kind == "knn":
        q = raw["knn"][f"k={p['k']}"][f"q={p['q']}"]
        return _snap(None if q is None else float(p["x"]) * q)
    if kind == "gap":
        if variant == "gap max":
            return _argmax(raw["gap"])
        # one-SE rule: the fewest clusters whose gap is within one SE of the gap at the next larger count
        # (a run of cuts with one count is one partition of the tree: represented by its finest cut)
        k = raw["k"]
        parts = [i for i in range(len(G) - 1, -1, -1) if i == 0 or k[i - 1] != k[i]]  # coarse to fine
        for a, b in zip(parts, parts[1:], strict=False):
            g, g_next, s_next = raw["gap"][a], raw["gap"][b], raw["gap_se"][b]
            if g is not None and g_next is not None and s_next is not None and g >= g_next - s_next:
                return G[a]
        return None
    if kind == "hdbscan":
        return _argmax(raw["hdbscan"][f"m={p['m']}"])
    if kind == "plateau":
        k = raw["k"]
        vals: list[float | None] = [None] * len(G)
        for i in range(1, len(G) - 1):
            if k[i + 1] >= 2 and k[i - 1] < n:
                vals[i] = -abs(math.log(k[i - 1]) - math.log(k[i + 1]))
        return _argmax(vals)
    if kind == "gold":
        return _argmax(raw["gold_ari"])
    raise ValueError(f"unknown variant {variant!r}")


def clusters_at(raw: dict[str, Any], t: float | None) -> int | None:
    return None if t is None else raw["k"][grid().index(round(t, 2))]


# ---------------------------------------------------------------- scoring and choosing

def reaches(rho: float) -> bool:
    return rho >= BAR - 1e-9


def spearman_at(doc: dict[str, Any], dataset: str, t: float | None) -> float:
    """The intent-count Spearman of the headline at cut t (a criterion without a pick falls back to shipped)."""
    value = doc["datasets"][dataset]["spearman"][grid().index(round(SHIPPED if t is None else t, 2))]
    return float("nan") if value is None else float(value)


def new_curve(doc: dict[str, Any], dataset: str) -> list[float] | None:
    """Per cut: the mean Spearman over the rebuilt repetitions past the saved ones (new corpora of the same
    size), or None where the study was run without a rebuild."""
    entry = doc.get("rebuilt", {}).get(dataset, {}).get(str(doc["datasets"][dataset]["n_corpus"]))
    if not entry or len(entry["per_rep"]) <= SAVED_REPS:
        return None
    return rep_mean(entry, range(SAVED_REPS, len(entry["per_rep"])))


def new_spearman_at(doc: dict[str, Any], dataset: str, t: float | None) -> float:
    curve = new_curve(doc, dataset)
    return float("nan") if curve is None else curve[grid().index(round(SHIPPED if t is None else t, 2))]


def _curve(doc: dict[str, Any], dataset: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in doc["datasets"][dataset]["spearman"]], dtype=float)


def evaluate(doc: dict[str, Any], variant: str, datasets: Sequence[str]) -> tuple[int, float]:
    rhos = [spearman_at(doc, d, pick(doc["datasets"][d]["raw"], variant)) for d in datasets]
    rhos = [r for r in rhos if math.isfinite(r)]
    return sum(reaches(r) for r in rhos), statistics.fmean(rhos) if rhos else float("nan")


def choose(doc: dict[str, Any], candidates: Sequence[str], train: Sequence[str]) -> str:
    """The variant reaching the bar on the most training datasets (then the best mean; ties: the first)."""
    scored = {v: evaluate(doc, v, train) for v in candidates}
    return max(candidates, key=lambda v: (scored[v][0], round(scored[v][1], 6), -candidates.index(v)))


def bar_datasets(doc: dict[str, Any]) -> list[str]:
    return [d for d in doc["datasets"] if d not in EXCLUDED]


def protocols(doc: dict[str, Any]) -> dict[str, Any]:
    """Every family (and `any criterion`) chosen in sample, on CLINC150, and leave-one-source-out."""
    from eval.corpora import dataset_source

    fams = variants()
    fams["any criterion"] = [v for f in FAMILY_ORDER if f != "fixed cut" for v in fams[f]]
    ds = bar_datasets(doc)
    tune = [d for d in ds if dataset_source(d) == TUNE_SOURCE]
    held = [d for d in ds if dataset_source(d) != TUNE_SOURCE]
    sources = sorted({dataset_source(d) for d in ds})
    out: dict[str, Any] = {}
    for fam, cands in fams.items():
        ins = choose(doc, cands, ds)
        cl = choose(doc, cands, tune)
        loso_pick: dict[str, str] = {}
        folds = {}
        for src in sources:
            train = [d for d in ds if dataset_source(d) != src]
            chosen = choose(doc, cands, train)
            folds[src] = chosen
            loso_pick.update({d: chosen for d in ds if dataset_source(d) == src})
        per = {}
        for d in ds:
            t = pick(doc["datasets"][d]["raw"], loso_pick[d])
            per[d] = {"variant": loso_pick[d], "t": t, "rho": spearman_at(doc, d, t), "rho_new": new_spearman_at(doc, d, t)}
        rhos = [p["rho"] for p in per.values() if math.isfinite(p["rho"])]
        new = [p["rho_new"] for p in per.values() if math.isfinite(p["rho_new"])]
        out[fam] = {
            "in_sample": {"variant": ins, "reaching": evaluate(doc, ins, ds)[0], "mean": evaluate(doc, ins, ds)[1]},
            "clinc": {"variant": cl, "train": evaluate(doc, cl, tune), "test": evaluate(doc, cl, held)},
            "loso": {"folds": folds, "reaching": sum(reaches(r) for r in rhos), "mean": statistics.fmean(rhos),
                     "new_reaching": sum(reaches(r) for r in new) if new else None,
                     "new_mean": statistics.fmean(new) if new else None, "per_dataset": per},
        }
    return out


def why(doc: dict[str, Any], prot: dict[str, Any]) -> dict[str, Any]:
    """How far each family's out-of-sample picks are from the cuts that would have reached the bar."""
    from eval.representations import spearman

    G = grid()
    ds = bar_datasets(doc)
    reach = {d: [t for t, v in zip(G, _curve(doc, d), strict=True) if reaches(v)] for d in ds}
    best = {d: G[int(np.nanargmax(_curve(doc, d)))] for d in ds}
    out: dict[str, Any] = {"reachable": [d for d in ds if reach[d]], "reach": reach, "best": best, "families": {}}
    for fam, p in prot.items():
        steps, signed = [], []
        for d in ds:
            t = p["loso"]["per_dataset"][d]["t"]
            t = SHIPPED if t is None else t
            if reach[d]:
                nearest = min(reach[d], key=lambda r: (abs(r - t), r))
                steps.append(round(abs(nearest - t) / 0.05))
                signed.append(round((t - nearest) / 0.05))
        picks = [p["loso"]["per_dataset"][d]["t"] for d in ds]
        valid = [(t, best[d]) for t, d in zip(picks, ds, strict=True) if t is not None]
        out["families"][fam] = {
            "mean_steps": statistics.fmean(steps) if steps else None,
            "too_fine": sum(s < 0 for s in signed), "too_coarse": sum(s > 0 for s in signed),
            "rank_with_best": spearman([a for a, _ in valid], [b for _, b in valid]) if len(valid) > 2 else None,
        }
    return out


# ---------------------------------------------------------------- running the study

def intent_rows(results: Path = RESULTS) -> list[dict[str, Any]]:
    from eval.ceiling import load, whole

    return [r for r in load(results)["intent"] if not whole(r["dataset"])]


def real_sample(ds: Any, n_real: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded sample of the domain's distinct real utterances (pool and held-out), with their intents
    (the intents feed only the `gold grain` diagnostic)."""
    by_text: dict[str, str] = {}
    for row in [r for rows in ds.pool.values() for r in rows] + list(ds.heldout):
        by_text.setdefault(row.text, row.intent)
    texts = sorted(by_text)
    rng = np.random.default_rng(seed)
    if len(texts) > n_real:
        texts = [texts[i] for i in sorted(rng.choice(len(texts), size=n_real, replace=False))]
    return texts, [by_text[t] for t in texts]


def rebuild(ds: Any, n: int, reps: int, *, cache: Any, reference_size: int = 100) -> dict[str, Any]:
    """The intent-count family of one dataset rebuilt with eval.corpora and scored at every cut as the
    validation study scores it (eval.representations.cut_scores, scores rounded to 6 places as it saves
    them): the Spearman of each repetition at each cut. Repetitions 0-2 are the saved study's corpora."""
    from eval.corpora import intent_count_family
    from eval.downstream import embed
    from eval.representations import ViewVectors, cut_scores, family_spearman, view_distances

    G = grid()
    corpora = [c for rep in range(reps) for c in intent_count_family(ds, n, rep)]
    texts = sorted({r.text for c in corpora for r in c.rows})
    vv = ViewVectors(text=dict(zip(texts, embed(texts, cache=cache), strict=True)), criteria={}, degenerate={})
    rows = []
    for c in corpora:
        condensed, kept, _ = view_distances([r.text for r in c.rows], "text", vv)
        scores, _ = cut_scores(condensed, len(kept), reference_size=reference_size)
        rows.append({"family": c.family, "rep": c.rep, "truth": c.truth, "level": c.level,
                     "scores": [round(x, 6) for x in scores]})
    per_rep = [[_r(family_spearman([r for r in rows if r["rep"] == rep], lambda r, i=i: r["scores"][i]).get(
        "intent_count")) for i in range(len(G))] for rep in range(reps)]
    # with few intents the repetitions can only redraw the same intent sets: count the corpora of the later
    # repetitions that are not one of the saved repetitions' corpora
    saved = {frozenset(r.id for r in c.rows) for c in corpora if c.rep < SAVED_REPS}
    later = [frozenset(r.id for r in c.rows) for c in corpora if c.rep >= SAVED_REPS]
    return {"levels": sorted({r["level"] for r in rows}), "texts": len(texts), "per_rep": per_rep,
            "later_corpora": len(later), "later_new": sum(c not in saved for c in later)}


def rep_mean(entry: dict[str, Any], reps: Sequence[int]) -> list[float]:
    """Per cut: the mean Spearman over the given repetitions (as family_spearman averages them)."""
    out = []
    for i in range(len(grid())):
        vals = [entry["per_rep"][r][i] for r in reps if r < len(entry["per_rep"]) and entry["per_rep"][r][i] is not None]
        out.append(statistics.fmean(vals) if vals else float("nan"))
    return out


def run(data: Path, *, n_real: int, seed: int, boots: int, refs: int, cache_dir: Path, reps: int,
        sizes: Sequence[int], size_spec: str, results: Path = RESULTS) -> dict[str, Any]:
    from clusterdiv.core.cache import ModelCache
    from eval.corpora import dataset_source, load_datasets
    from eval.downstream import embed
    from eval.validate import dataset_n

    rows = intent_rows(results)
    doc: dict[str, Any] = {
        "meta": {"command": "python -m eval.resolution " + " ".join(sys.argv[1:]), "n_real": n_real, "seed": seed,
                 "boots": boots, "refs": refs, "shares": list(SHARES), "grid": list(grid()), "bar": BAR,
                 "bar_count": BAR_COUNT, "shipped": SHIPPED, "tune_source": TUNE_SOURCE, "excluded": EXCLUDED,
                 "spearman_from": "eval/results/validation.json, eval/results/fresh/validation.json (via eval.ceiling)",
                 "threads": os.environ.get("OMP_NUM_THREADS"), "rebuild_reps": reps, "saved_reps": SAVED_REPS,
                 "sizes": list(sizes), "size_datasets": size_spec},
        "datasets": {},
    }
    cache = ModelCache(cache_dir)
    t0 = time.perf_counter()
    embed(["warm the model"], cache=tempfile.mkdtemp())
    doc["meta"]["model_load_s"] = round(time.perf_counter() - t0, 2)
    for r in rows:
        name = r["dataset"]
        (ds,) = load_datasets(data, name)
        texts, gold = real_sample(ds, n_real, seed)
        hits0 = sum(cache.hits.values())
        t0 = time.perf_counter()
        X = embed(texts, cache=cache)
        embed_s = time.perf_counter() - t0
        cached = sum(cache.hits.values()) - hits0
        raw = measure(np.asarray(X, dtype=np.float64), seed=seed, boots=boots, refs=refs, gold=gold)
        spear = [r["ceiling"]["values"][f"t={t:.2f}"] for t in grid()]
        doc["datasets"][name] = {"source": dataset_source(name), "group": r["group"], "levels": r["levels"],
                                 "n_corpus": dataset_n(name, 150),
                                 "spearman": [_r(x) for x in spear], "raw": raw,
                                 "cost": {"texts": len(texts), "embed_s": round(embed_s, 2), "cached": cached}}
        print(f"  {name}: {len(texts)} texts, embed {embed_s:.1f}s ({cached} cached), criteria "
              f"{sum(raw['seconds'].values()):.1f}s", file=sys.stderr, flush=True)
    # the cold cost: one dataset's sample embedded again through an empty cache (the model already loaded)
    name = max(doc["datasets"], key=lambda d: doc["datasets"][d]["cost"]["texts"])
    (ds,) = load_datasets(data, name)
    texts, _ = real_sample(ds, n_real, seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        embed(texts, cache=ModelCache(Path(tmp)))
        cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    embed(texts, cache=cache)
    warm = time.perf_counter() - t0
    doc["cold"] = {"dataset": name, "texts": len(texts), "embed_cold_s": round(cold, 2),
                   "embed_cached_s": round(warm, 2)}
    # the same study on new corpora (repetitions past the saved 3), and at other corpus sizes
    rebuilt: dict[str, dict[str, Any]] = {}
    size_names = {d.name for d in load_datasets(data, size_spec)} if sizes and reps else set()
    for name in doc["datasets"] if reps else []:
        (ds,) = load_datasets(data, name)
        ns = sorted({doc["datasets"][name]["n_corpus"], *(sizes if name in size_names else ())})
        rebuilt[name] = {str(n): rebuild(ds, n, reps, cache=cache) for n in ns}
        print(f"  rebuilt {name}: n={ns}, {reps} repetitions", file=sys.stderr, flush=True)
    doc["rebuilt"] = rebuilt
    return doc


# ---------------------------------------------------------------- the page

def _f(x: float | None, nd: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _t(t: float | None) -> str:
    return "none" if t is None else f"{t:.2f}"


def _ranges(ts: Sequence[float]) -> str:
    if not ts:
        return "none"
    out, start, prev = [], ts[0], ts[0]
    for t in list(ts[1:]) + [None]:
        if t is not None and abs(t - prev - 0.05) < 1e-6:
            prev = t
            continue
        out.append(f"{start:.2f}" if start == prev else f"{start:.2f}-{prev:.2f}")
        if t is not None:
            start = prev = t
    return ", ".join(out)


def render(doc: dict[str, Any]) -> str:
    from eval.corpora import dataset_source

    G = grid()
    ds = bar_datasets(doc)
    tune = [d for d in ds if dataset_source(d) == TUNE_SOURCE]
    held = [d for d in ds if dataset_source(d) != TUNE_SOURCE]
    prot = protocols(doc)
    w = why(doc, prot)
    meta = doc["meta"]
    shipped = evaluate(doc, f"fixed t={SHIPPED:.2f}", ds)
    ceiling = sum(bool(w["reach"][d]) for d in ds)
    L = [
        "# A mode resolution learned from the domain's real data (issue 31, item 1): a study",
        "",
        "_Generated by `python -m eval.resolution --from-json eval/results/resolution.json` from saved JSON; do not "
        "edit by hand._",
        "",
        f"For each within-domain dataset of the intent-count study, {meta['n_real']} of the domain's real utterances "
        "(all of them where it holds fewer; no labels) are clustered as the headline clusters, and each unsupervised "
        f"criterion picks one of the {len(G)} cuts {G[0]:.2f}-{G[-1]:.2f} from them alone. The pick is scored by the "
        "intent-count Spearman of the headline at that cut on that dataset (saved validation studies; corpora of "
        "150 utterances, 60 for HINT3, 3 repetitions). Free parameters, and for *any criterion* the criterion "
        f"itself, are chosen on the {len(tune)} CLINC150 domains (reported on the {len(held)} HWU64 and HINT3 "
        f"datasets) and leave-one-source-out (reported on all {len(ds)}). The issue's bar: Spearman >= {BAR} out of "
        f"sample on at least {BAR_COUNT} of {len(ds)}.",
        "",
        *(f"- Excluded: {d}: {why_}." for d, why_ in EXCLUDED.items()),
        f"- Shipped cut {SHIPPED}: {shipped[0]} of {len(ds)}. Per-dataset ceiling over the {len(G)} cuts (each "
        f"dataset's best cut, chosen on itself): {ceiling} of {len(ds)}; no cut reaches the bar on "
        + ", ".join(f"{d} (best {_f(max(doc['datasets'][d]['spearman']))})" for d in ds if not w["reach"][d]) + ".",
        "",
        "## Datasets reaching the bar, per criterion",
        "",
        "*In sample*: the variant chosen on all datasets, scored on them. *CLINC150 -> others*: chosen on the "
        "CLINC150 domains; train figure in sample, test figure out of sample. *LOSO*: chosen on the other "
        "sources, scored on each held-out source: out of sample on every dataset. Mean: mean Spearman.",
        "",
        _row("criterion", "variants", f"in sample (of {len(ds)})", "chosen on CLINC150",
             f"CLINC150 train (of {len(tune)})", f"HWU64+HINT3 test (of {len(held)})",
             f"LOSO out of sample (of {len(ds)})", "LOSO mean", "LOSO on new corpora", "LOSO choices per held-out source"),
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    fams = variants()
    fams["any criterion"] = [v for f in FAMILY_ORDER if f != "fixed cut" for v in fams[f]]
    for fam in (*FAMILY_ORDER, "any criterion"):
        p = prot[fam]
        folds = "; ".join(f"{src}: {v}" for src, v in p["loso"]["folds"].items())
        L.append(_row(fam, len(fams[fam]), f"{p['in_sample']['reaching']} ({p['in_sample']['variant']})",
                      p["clinc"]["variant"], f"{p['clinc']['train'][0]} ({_f(p['clinc']['train'][1])})",
                      f"{p['clinc']['test'][0]} ({_f(p['clinc']['test'][1])})",
                      f"**{p['loso']['reaching']}**", _f(p["loso"]["mean"]),
                      "n/a" if p["loso"]["new_reaching"] is None
                      else f"{p['loso']['new_reaching']} ({_f(p['loso']['new_mean'])})", folds))
    gold = [spearman_at(doc, d, pick(doc["datasets"][d]["raw"], "gold")) for d in ds]
    gold_new = [new_spearman_at(doc, d, pick(doc["datasets"][d]["raw"], "gold")) for d in ds]
    gold_new = [r for r in gold_new if math.isfinite(r)]
    L += [_row("gold grain (uses labels; diagnostic)", 1, f"{sum(reaches(r) for r in gold)}", "-", "-", "-",
               sum(reaches(r) for r in gold), _f(statistics.fmean([r for r in gold if math.isfinite(r)])),
               f"{sum(reaches(r) for r in gold_new)} ({_f(statistics.fmean(gold_new))})" if gold_new else "n/a",
               "-"), "",
          "- A criterion that gives no cut on a dataset (the gap's one-SE rule where the gap never levels off, "
          f"HDBSCAN finding fewer than two clusters) falls back to the shipped {SHIPPED}, as the product would. "
          f"*LOSO on new corpora*: the same out-of-sample picks scored on repetitions {SAVED_REPS}-"
          f"{meta.get('rebuild_reps', 0) - 1} of the intent-count family (new corpora of the same size; see "
          "*Reproducibility* below): datasets at the bar, and the mean.", ""]

    winners = [f for f in FAMILY_ORDER[1:] + ("any criterion",) if prot[f]["loso"]["reaching"] >= BAR_COUNT]
    fixed_loso = prot["fixed cut"]["loso"]["reaching"]
    best_unsup = max((f for f in (*FAMILY_ORDER[1:], "any criterion")), key=lambda f: prot[f]["loso"]["reaching"])
    L += [
        f"- Reaching the bar ({BAR_COUNT} of {len(ds)} out of sample): "
        + (", ".join(f"{f} ({prot[f]['loso']['reaching']})" for f in winners) if winners else "no criterion")
        + f". The best unsupervised criterion out of sample is {best_unsup} "
        f"({prot[best_unsup]['loso']['reaching']} of {len(ds)}), against {fixed_loso} for one fixed cut chosen the "
        f"same way and {shipped[0]} for the shipped {SHIPPED}; the ceiling is {ceiling}.",
        "",
        "## Per dataset: the cuts that reach the bar and each criterion's out-of-sample pick",
        "",
        "Each cell: the LOSO-chosen variant's cut on that dataset and the Spearman there (**bold**: at the bar). "
        "*Reaching*: every cut with Spearman >= 0.95. *Grain*: the cut whose clustering of the real sample agrees "
        "best with the gold intents (ARI; uses the labels).",
        "",
        _row("dataset", "source", "levels", "shipped", "best cut", "reaching", "grain",
             *[f for f in FAMILY_ORDER]),
        "| --- | --- | --- | ---: | --- | --- | --- |" + " --- |" * len(FAMILY_ORDER),
    ]
    for d in doc["datasets"]:
        e = doc["datasets"][d]
        sp = _curve(doc, d)
        bi = int(np.nanargmax(sp))
        gt = pick(e["raw"], "gold")
        cells = []
        for fam in FAMILY_ORDER:
            if d in EXCLUDED:
                cells.append("-")
                continue
            p = prot[fam]["loso"]["per_dataset"][d]
            cell = f"{_t(p['t'])}: {_f(p['rho'])}"
            cells.append(f"**{cell}**" if reaches(p["rho"]) else cell)
        reach = [t for i, t in enumerate(G) if reaches(sp[i])]
        L.append(_row(d + (" (excluded)" if d in EXCLUDED else ""), e["source"], ",".join(map(str, e["levels"])),
                      _f(spearman_at(doc, d, SHIPPED)), f"{G[bi]:.2f}: {_f(sp[bi])}", _ranges(reach),
                      f"{_t(gt)}: {_f(spearman_at(doc, d, gt))}", *cells))
    L += ["", "## Why: how far the picks are from the cuts that work", "",
          f"Over the {len(w['reachable'])} datasets where some cut reaches the bar: the mean distance, in grid steps of "
          "0.05, from each family's out-of-sample pick to the nearest cut that reaches the bar; how many picks are "
          "finer or coarser than every such cut; and the rank correlation, over all datasets, between the pick and "
          "the dataset's best cut (does the criterion at least move the right way from domain to domain?).",
          "",
          _row("criterion", "mean steps to a working cut", "too fine", "too coarse", "Spearman(pick, best cut)"),
          "| --- | ---: | ---: | ---: | ---: |"]
    for fam in (*FAMILY_ORDER, "any criterion"):
        f = w["families"][fam]
        L.append(_row(fam, _f(f["mean_steps"], 1), f["too_fine"], f["too_coarse"], _f(f["rank_with_best"])))
    widths = [len(w["reach"][d]) for d in w["reachable"]]
    bests = [w["best"][d] for d in ds]
    L += ["", f"- The working cuts per dataset: {min(widths)}-{max(widths)} of {len(G)} (median "
          f"{statistics.median(widths):g}); the best cuts spread over {min(bests):.2f}-{max(bests):.2f}. "
          f"Datasets with one working cut or none: "
          + ", ".join(f"{d} ({len(w['reach'][d])})" for d in ds if len(w["reach"][d]) <= 1) + "."]
    if doc.get("rebuilt"):
        L += reproducibility_section(doc, prot)
        L += size_section(doc)
    L += conclusion(doc, prot, w)
    L += cost_section(doc)
    return "\n".join(L) + "\n"


def reproducibility_section(doc: dict[str, Any], prot: dict[str, Any]) -> list[str]:
    """The saved figures against the same study on new corpora: is the per-dataset best cut a property of
    the domain, or of the three repetitions it was read from?"""
    G = grid()
    ds = bar_datasets(doc)
    R = doc["meta"]["rebuild_reps"]
    saved_again = 0
    rows, agree, pairs, sds = [], 0, 0, []
    oracle_new, ceiling_new, shipped_new, fresh_sets, oracle_fresh = 0, 0, 0, 0, 0
    for d in doc["datasets"]:
        entry = doc["rebuilt"][d][str(doc["datasets"][d]["n_corpus"])]
        again = rep_mean(entry, range(SAVED_REPS))
        saved = _curve(doc, d)
        saved_again += all((math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-3 for a, b in zip(again, saved, strict=True))
        new = np.array(new_curve(doc, d), dtype=float)
        for i in range(len(G)):
            vals = [entry["per_rep"][r][i] for r in range(R) if entry["per_rep"][r][i] is not None]
            if len(vals) > 1:
                sds.append(statistics.stdev(vals))
        if d in EXCLUDED:
            continue
        best = int(np.nanargmax(saved))
        reach_saved = [t for t, v in zip(G, saved, strict=True) if reaches(v)]
        reach_new = [t for t, v in zip(G, new, strict=True) if reaches(v)]
        agree += sum(reaches(a) == reaches(b) for a, b in zip(saved, new, strict=True))
        pairs += len(G)
        oracle_new += reaches(new[best])
        if entry.get("later_new", 0) > 0:
            fresh_sets += 1
            oracle_fresh += reaches(new[best])
        ceiling_new += bool(reach_new)
        shipped_new += reaches(new[G.index(SHIPPED)])
        rows.append(_row(d, f"{entry.get('later_new', 'n/a')} of {entry.get('later_corpora', 'n/a')}",
                         _ranges(reach_saved), _ranges(reach_new), f"{G[best]:.2f}: {_f(saved[best])} -> "
                         f"{_f(new[best])}", f"{G[int(np.nanargmax(new))]:.2f}: {_f(float(np.nanmax(new)))}",
                         _f(new[G.index(SHIPPED)])))
    sd = statistics.median(sds) if sds else float("nan")
    saved_reach = sum(any(reaches(v) for v in _curve(doc, d)) for d in ds)
    return [
        "", f"## Reproducibility: the saved figures against new corpora (repetitions {SAVED_REPS}-{R - 1})", "",
        f"The intent-count family rebuilt with eval.corpora ({R} repetitions: each draws its intents in a new "
        f"seeded order; repetitions 0-{SAVED_REPS - 1} are the saved study's corpora, recomputed here: they match the "
        f"saved figures on {saved_again} of {len(doc['datasets'])} datasets) and scored at every cut. *Saved best "
        f"cut -> new*: the dataset's ceiling cut (best on the saved {SAVED_REPS} repetitions) and its Spearman on the "
        "new ones.", "",
        _row("dataset", "later corpora not among the saved", f"cuts reaching, saved ({SAVED_REPS} reps)",
             f"cuts reaching, new ({R - SAVED_REPS} reps)", "saved best cut -> new", "best cut on new",
             f"shipped {SHIPPED} on new"),
        "| --- | ---: | --- | --- | --- | --- | ---: |", *rows, "",
        "- On datasets of 2-4 intents the later repetitions can only redraw the intent sets the saved ones drew, "
        "so many of their corpora are the saved corpora again (second column): there the new figures repeat the "
        "saved ones and are no test.",
        f"- The per-dataset ceiling, chosen on the saved repetitions and scored on new corpora: **{oracle_new} of "
        f"{len(ds)}** at the bar (on the saved ones: {saved_reach}); on the {fresh_sets} datasets whose later "
        f"repetitions hold any new corpora, {oracle_fresh} of {fresh_sets}. Some cut reaches the bar on the new corpora on {ceiling_new} of {len(ds)}; the shipped {SHIPPED} on "
        f"{shipped_new}. The bar status of a (dataset, cut) pair agrees between the saved and the new repetitions "
        f"on {agree} of {pairs} pairs ({agree / pairs:.0%}).",
        f"- One repetition's Spearman at one cut varies with the intents drawn: median standard deviation {sd:.2f} "
        f"over repetitions, so a mean of {SAVED_REPS} has a standard error of about {sd / math.sqrt(SAVED_REPS):.2f}, "
        f"of {R - SAVED_REPS} about {sd / math.sqrt(R - SAVED_REPS):.2f}: near the bar, which cuts pass is largely "
        "which intents the repetitions drew.",
    ]


def conclusion(doc: dict[str, Any], prot: dict[str, Any], w: dict[str, Any]) -> list[str]:
    G = grid()
    ds = bar_datasets(doc)
    unsup = (*FAMILY_ORDER[1:], "any criterion")
    best = max(unsup, key=lambda f: (prot[f]["loso"]["reaching"], prot[f]["loso"]["mean"]))
    winners = [f for f in unsup if prot[f]["loso"]["reaching"] >= BAR_COUNT]
    ranks = [w["families"][f]["rank_with_best"] for f in unsup if w["families"][f]["rank_with_best"] is not None]
    gold = sum(reaches(spearman_at(doc, d, pick(doc["datasets"][d]["raw"], "gold"))) for d in ds)
    L = ["", "## Conclusion", ""]
    if winners:
        L.append(f"- Out of sample (LOSO), {', '.join(winners)} reach the bar ({BAR_COUNT} of {len(ds)}).")
        return L
    L.append(f"- No unsupervised criterion reaches the bar out of sample: the best, {best}, reaches {BAR} on "
             f"{prot[best]['loso']['reaching']} of {len(ds)} (LOSO; mean {_f(prot[best]['loso']['mean'])}), the "
             f"shipped {SHIPPED} on {evaluate(doc, f'fixed t={SHIPPED:.2f}', ds)[0]}, one fixed cut chosen the same "
             f"way on {prot['fixed cut']['loso']['reaching']}; chosen in sample, with the criterion itself free, "
             f"{prot['any criterion']['in_sample']['reaching']}. Their picks do not follow the dataset's best cut "
             f"(rank correlation {min(ranks):.2f} to {max(ranks):.2f} across criteria), and the cut that matches the "
             f"gold intents best (it uses the labels) reaches the bar on {gold}: the cut that ranks corpora of "
             "150 utterances (60 for HINT3) is not the domain's intent grain."
             + (f" On new corpora the best criterion's picks reach the bar on {prot[best]['loso']['new_reaching']}."
                if prot[best]["loso"]["new_reaching"] is not None else ""))
    if doc.get("rebuilt"):
        oracle_new = sum(reaches(new_spearman_at(doc, d, G[int(np.nanargmax(_curve(doc, d)))])) for d in ds)
        fresh = [d for d in ds if doc["rebuilt"][d][str(doc["datasets"][d]["n_corpus"])].get("later_new", 0) > 0]
        oracle_fresh = sum(reaches(new_spearman_at(doc, d, G[int(np.nanargmax(_curve(doc, d)))])) for d in fresh)
        L.append(f"- The target itself does not hold still: each dataset's own best cut, chosen on the saved "
                 f"corpora, stays at the bar on new corpora of the same dataset and size on {oracle_new} of {len(ds)} "
                 f"(and on {oracle_fresh} of the {len(fresh)} whose later repetitions hold any new corpora), "
                 f"under the {BAR_COUNT} the issue asks for; the best cut also moves with corpus size. So on this "
                 "evidence no single cut per dataset, learned without labels or tuned on the dataset itself, meets "
                 "item 1's bar with the raw-text headline; a resolution learned from real data could be stored "
                 "(one cut per dataset, its criterion and sample recorded) but is not shown to be worth shipping.")
    return L


def size_section(doc: dict[str, Any]) -> list[str]:
    G = grid()
    R = doc["meta"]["rebuild_reps"]
    sizes = [int(n) for n in doc["meta"].get("sizes", [])]
    by_d = {d: v for d, v in doc["rebuilt"].items() if all(str(n) in v for n in sizes)}
    if len(sizes) < 2 or not by_d:
        return []
    L = ["", "## Does the working cut depend on corpus size?", "",
         f"The intent-count family rebuilt at other corpus sizes ({R} repetitions, reference size 100; a level no k "
         "intents can fill at that size is left out) and scored at every cut. Each cell: the cuts reaching the bar, "
         "and the best cut (mean Spearman over all repetitions).", "",
         _row("dataset", *[f"n={n}" for n in sizes]), "| --- |" + " --- |" * len(sizes)]
    moved, kept = 0, {n: 0 for n in sizes}
    base = 150 if 150 in sizes else sizes[0]
    for d, by_n in by_d.items():
        cells, bests = [], {}
        curves = {n: rep_mean(by_n[str(n)], range(R)) for n in sizes}
        for n in sizes:
            sp = curves[n]
            reach = [t for t, v in zip(G, sp, strict=True) if reaches(v)]
            bi = int(np.nanargmax(sp))
            bests[n] = bi
            cells.append(f"{_ranges(reach)}; best {G[bi]:.2f} ({_f(sp[bi])}) [levels "
                         f"{','.join(map(str, by_n[str(n)]['levels']))}]")
        moved += max(bests.values()) - min(bests.values()) > 1
        for n in sizes:
            kept[n] += reaches(curves[n][bests[base]])
        L.append(_row(d, *cells))
    L += ["", f"- The best cut moves by more than one grid step across sizes on {moved} of {len(by_d)} datasets; the "
          f"best cut at n={base} still reaches the bar at "
          + ", ".join(f"n={n} on {kept[n]}" for n in sizes if n != base) + f" of {len(by_d)}."]
    return L


def cost_section(doc: dict[str, Any]) -> list[str]:
    meta = doc["meta"]
    es = doc["datasets"].values()
    secs: dict[str, list[float]] = {}
    for e in es:
        for key, v in e["raw"]["seconds"].items():
            secs.setdefault(key, []).append(v)
    texts = [e["cost"]["texts"] for e in es]
    cold = doc["cold"]
    total = [sum(e["raw"]["seconds"].values()) for e in es]
    return [
        "", "## Cost (one-off per dataset)", "",
        f"Measured on this machine (2 CPU cores, OMP_NUM_THREADS={meta.get('threads')}), {min(texts)}-{max(texts)} "
        f"real texts per dataset, {meta['boots']} subsamples per share ({len(meta['shares'])} shares), "
        f"{meta['refs']} gap references.",
        "",
        _row("step", "mean s per dataset", "max s"), "| --- | ---: | ---: |",
        *[_row(k, _f(statistics.fmean(v)), _f(max(v))) for k, v in secs.items()],
        _row("all criteria", _f(statistics.fmean(total)), _f(max(total))),
        "",
        f"- Embedding {cold['texts']} texts ({cold['dataset']}) cold (empty cache, model loaded): "
        f"{_f(cold['embed_cold_s'])} s; from the cache: {_f(cold['embed_cached_s'])} s; loading the model once: "
        f"{_f(meta['model_load_s'])} s. A calibration is therefore model load + cold embedding + the chosen "
        "criterion's seconds above, once per dataset; later batches read it back.",
    ]


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n-real", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--boots", type=int, default=20)
    parser.add_argument("--refs", type=int, default=10)
    parser.add_argument("--reps", type=int, default=10,
                        help="repetitions of the rebuilt intent-count family (0: no rebuild); past 3 they are new corpora")
    parser.add_argument("--sizes", default="60,150,300", help="corpus sizes for the size check ('' to skip)")
    parser.add_argument("--size-datasets", default="clinc150:*")
    parser.add_argument("--cache-dir", type=Path, default=Path("eval/results/cache"))
    parser.add_argument("--out", type=Path, default=JSON_OUT)
    parser.add_argument("--markdown", type=Path, default=MD_OUT)
    parser.add_argument("--from-json", type=Path, default=None, help="render the page from a saved JSON")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        doc = json.loads(args.from_json.read_text())
    else:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        doc = run(args.data, n_real=args.n_real, seed=args.seed, boots=args.boots, refs=args.refs,
                  cache_dir=args.cache_dir, reps=args.reps, sizes=sizes, size_spec=args.size_datasets)
        args.out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        doc = json.loads(args.out.read_text())  # the page is always what the saved JSON gives
    page = render(doc)
    args.markdown.write_text(page)
    return page


if __name__ == "__main__":
    print(main())
