"""Does the scalable clustering keep the validation figures? The families at n = 2,000, exact vs scalable.

Issue 15 asks that the clustering used above the exact limit leaves the validation harness's
Spearman figures unchanged. This builds the validation families (eval/corpora.py) at 2,000
examples per corpus on CLINC150 and HWU64, embeds the texts once with the product's embed stage
(MiniLM, cached), and scores every corpus's raw-text modes three ways at the default threshold:

* `exact`: scikit-learn's exact average linkage (the path every n <= 5,000 takes);
* `by-means`: the matrix-free exact linkage by cluster means, forced with a limit of 500, so 2,000
  points are at the 4 x limit where it still links exactly (`modes/linkage.py`);
* `scalable`: the scalable path forced with a limit of 250 (2,000 > 4 x 250): average linkage on a
  k-NN graph, then the exact linkage of its clusters, which is what a batch past 4 x the limit gets
  (up to 200,000 examples; the seeded sample grouping beyond that is measured in
  eval/results/bench_cluster_scale.md).

It reports each family's Spearman with the known order under each, and per corpus the ARI of
each against exact and the change in `score_normalized`. No setting is tuned here.

    python -m eval.scale_validity [--data ../shared/data] [--n 2000] [--reps 2]
    python -m eval.scale_validity --from-json      # re-render eval/results/scale_validity.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "eval" / "results" / "scale_validity"
FAMILIES = ("intent_count", "head_collapse", "recursive_replace", "recursive_accumulate", "ngram_mislead",
            "contamination")
VIEWS = {"exact": None, "by-means": 500, "scalable": 250}


def run(data: Path, n: int, reps: int, cache_dir: Path) -> dict:
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from clusterdiv.core.cache import ModelCache
    from clusterdiv.modes.cluster import ClusterParams, cluster_vectors
    from clusterdiv.modes.embed import Embedder, embed_texts
    from clusterdiv.modes.represent import DEFAULT_THRESHOLDS
    from clusterdiv.modes.scoring import score_labels
    from eval.corpora import build_all, load_datasets
    from eval.validate import spearman

    threshold = DEFAULT_THRESHOLDS["text"]
    embedder = Embedder()
    rows_out = []
    with ModelCache(cache_dir) as cache:
        for ds in load_datasets(data, "clinc150,hwu64"):
            corpora = build_all(ds, n=n, reps=reps, families=list(FAMILIES))
            texts = sorted({r.text for c in corpora for r in c.rows})
            vectors = embed_texts(texts, model=embedder, cache=cache)
            index = {t: i for i, t in enumerate(texts)}
            for c in corpora:
                X = np.asarray(vectors[[index[r.text] for r in c.rows]], dtype=np.float32)
                row = {"dataset": ds.name, "family": c.family, "level": c.level, "truth": c.truth, "rep": c.rep,
                       "n": len(c.rows)}
                labels = {}
                for view, cap in VIEWS.items():
                    params = ClusterParams(method="agglomerative", distance_threshold=threshold,
                                           **({"agglomerative_max_n": cap} if cap else {}))
                    t0 = time.perf_counter()
                    clustering = cluster_vectors(X, params=params, seed=0)
                    row[f"{view}_s"] = time.perf_counter() - t0
                    labels[view] = clustering.labels
                    row[f"{view}_modes"] = clustering.n_clusters
                    row[f"{view}_score"] = score_labels(clustering.labels, reference_size=100,
                                                        n_boot=0).score_normalized
                    row[f"{view}_sampled"] = clustering.sampled
                for view in VIEWS:
                    row[f"{view}_ari"] = float(adjusted_rand_score(labels["exact"], labels[view]))
                rows_out.append(row)
                print(ds.name, c.family, c.level, c.rep, {v: round(row[f"{v}_score"], 4) for v in VIEWS},
                      file=sys.stderr, flush=True)
    summary = []
    for dataset in sorted({r["dataset"] for r in rows_out}):
        for family in FAMILIES:
            rows = [r for r in rows_out if r["dataset"] == dataset and r["family"] == family]
            if not rows:
                continue
            entry = {"dataset": dataset, "family": family}
            for view in VIEWS:
                per_rep = [spearman([r["truth"] for r in rows if r["rep"] == k],
                                    [r[f"{view}_score"] for r in rows if r["rep"] == k])
                           for k in sorted({r["rep"] for r in rows})]
                entry[f"{view}_spearman"] = sum(per_rep) / len(per_rep)
                entry[f"{view}_min_ari"] = min(r[f"{view}_ari"] for r in rows)
                entry[f"{view}_max_score_change"] = max(abs(r[f"{view}_score"] - r["exact_score"]) for r in rows)
            summary.append(entry)
    return {"n": n, "reps": reps, "threshold": threshold, "views": VIEWS, "corpora": rows_out,
            "summary": summary, "cpu_count": os.cpu_count()}


def render(res: dict) -> str:
    lines = [f"# Validation families at n = {res['n']:,}: exact vs scalable clustering (eval/scale_validity.py)", "",
             f"Raw-text MiniLM vectors, threshold {res['threshold']}, {res['reps']} repetitions; Spearman of "
             "`score_normalized` with the known order (mean over repetitions), sign-corrected. `by-means`: "
             "exact linkage by cluster means (limit 500, 2,000 points); `scalable`: k-NN-graph linkage (limit "
             "250). ARI and score change are per corpus against `exact` (worst corpus).", "",
             "| dataset | family | Spearman exact | by-means | scalable | min ARI by-means | min ARI scalable "
             "| max score change by-means | scalable |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in res["summary"]:
        lines.append(f"| {e['dataset']} | {e['family']} | {e['exact_spearman']:.2f} | {e['by-means_spearman']:.2f} "
                     f"| {e['scalable_spearman']:.2f} | {e['by-means_min_ari']:.4f} | {e['scalable_min_ari']:.4f} "
                     f"| {e['by-means_max_score_change']:.4f} | {e['scalable_max_score_change']:.4f} |")
    cells = [e for e in res["summary"] if not math.isnan(e["exact_spearman"])]
    undefined = [e for e in res["summary"] if math.isnan(e["exact_spearman"])]
    changed = [e for e in cells if abs(e["scalable_spearman"] - e["exact_spearman"]) > 1e-9]
    same = [e for e in cells if abs(e["by-means_spearman"] - e["exact_spearman"]) <= 1e-9]
    lines += [""]
    if undefined:
        lines.append("- nan: " + ", ".join(f"{e['dataset']} {e['family']}" for e in undefined) + " builds only one "
                     "level at this size (too few examples per intent for the smaller levels), so it has no order "
                     "to correlate with; its ARI and score columns still compare the clusterings.")
    lines += [f"- by-means: Spearman identical to exact in {len(same)} of {len(cells)} dataset-family cells.",
              f"- scalable: Spearman differs from exact in {len(changed)} of {len(cells)} cells"
              + (": " + ", ".join(f"{e['dataset']} {e['family']} {e['exact_spearman']:.2f} -> "
                                  f"{e['scalable_spearman']:.2f}" for e in changed) if changed else "") + ".",
              f"- {len(res['corpora'])} corpora; computed on {res['cpu_count']} CPU cores."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "eval" / "results" / "cache")
    parser.add_argument("--from-json", action="store_true", help="re-render the markdown from the saved JSON")
    args = parser.parse_args(argv)
    json_path, md_path = OUT.with_suffix(".json"), OUT.with_suffix(".md")
    if args.from_json:
        res = json.loads(json_path.read_text(encoding="utf-8"))
    else:
        res = run(args.data, args.n, args.reps, args.cache_dir)
        json_path.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    md_path.write_text(render(res), encoding="utf-8")
    print(md_path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
