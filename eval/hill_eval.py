"""Exploration, not a tuned choice: would counting modes by abundance rank sets better than richness?

The headline counts distinct modes (Hill number of order 0: every mode counts 1, a singleton as
much as a mode holding half the batch). Vendi, which beats it on the validation families
(eval/results/size.md), is an abundance- and similarity-weighted count (order 1). Between the two
sit the Hill numbers of the same modes: order 1, exp(Shannon entropy of the mode shares), and order
2, the inverse Simpson index, both per example. This computes them on RESULTS.md's corpora and on the
fresh HWU64 scenarios (eval/HELDOUT.md), at the shipped modes (raw text, cosine distance 0.65), equal
corpus sizes, nothing tuned. It changes no default: a headline of another order would also need its
size normalisation and interval (iNEXT's interpolation and extrapolation for q = 1, 2) before it
could be compared across batch sizes.

    python -m eval.hill_eval --data ../shared/data      # eval/results/hill.{json,md}
    python -m eval.hill_eval --from-json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
THRESHOLD = 0.65
METRICS = ("headline", "hill_1", "hill_2", "vendi")


def hill_numbers(labels: np.ndarray) -> tuple[float, float]:
    """(exp Shannon entropy, inverse Simpson) of the mode shares, each divided by the number of examples."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(np.exp(-(p * np.log(p)).sum())) / len(labels), float(1.0 / (p * p).sum()) / len(labels)


def study(ds, *, reps: int, cache) -> dict[str, Any]:
    from clusterdiv.metrics.semantic import vendi_score
    from eval.corpora import FAMILIES, build_all
    from eval.downstream import embed
    from eval.representations import GRID, ViewVectors, cut_scores, view_distances
    from eval.validate import dataset_n

    corpora = build_all(ds, n=dataset_n(ds.name, 150), reps=reps, families=FAMILIES)
    texts = sorted({r.text for c in corpora for r in c.rows})
    vectors = dict(zip(texts, embed(texts, cache=cache), strict=True))
    vv = ViewVectors(text=vectors, criteria={}, degenerate={})
    at = GRID.index(THRESHOLD)
    rows = []
    for c in corpora:
        ct = [r.text for r in c.rows]
        condensed, kept, _ = view_distances(ct, "text", vv)
        scores, labels = cut_scores(condensed, len(kept), reference_size=100)
        h1, h2 = hill_numbers(np.asarray(labels[at]))
        rows.append({"family": c.family, "level": c.level, "truth": c.truth, "rep": c.rep,
                     "headline": round(scores[at], 6), "hill_1": round(h1, 6), "hill_2": round(h2, 6),
                     "vendi": round(vendi_score(np.vstack([vectors[t] for t in ct])), 6)})
    return {"dataset": ds.name, "rows": rows}


def guidance(results: list[dict[str, Any]], group) -> list[str]:
    """Issue 31 item 4: per family, which number ranks sets better on RESULTS.md's datasets (the seen group:
    the headline's threshold was chosen out of sample on them), so the guidance leads with it."""
    import statistics

    from eval.corpora import FAMILIES
    from eval.representations import family_spearman

    label, keep = group
    lead, trail = [], []
    for f in FAMILIES:
        mean = {}
        for m in ("headline", "vendi"):
            vals = [v for r in results if keep(r["dataset"])
                    if (v := family_spearman(r["rows"], lambda row, m=m: row[m]).get(f)) is not None]
            mean[m] = statistics.fmean(vals) if vals else None
        if mean["headline"] is None or mean["vendi"] is None:
            continue
        (lead if mean["headline"] >= mean["vendi"] else trail).append(
            f"{f} ({mean['headline']:.2f} vs {mean['vendi']:.2f})")
    return [f"**Which number to read first** ({label}, headline vs Vendi): the headline ranks sets at least as well "
            f"as Vendi on {len(lead)} of {len(lead) + len(trail)} families"
            + (f" ({'; '.join(lead)})" if lead else "")
            + (f" and trails it on {'; '.join(trail)}: for those families lead with `vendi_normalized` and read "
               "the modes for what is missing, not for the ranking." if trail else ".")]


def render(results: list[dict[str, Any]]) -> str:
    from eval.size_eval import FRESH, family_table

    fresh = set(FRESH.split(","))
    groups = (("seen (RESULTS.md datasets)", lambda d: d not in fresh), ("fresh (HWU64 3-4 intents)", lambda d: d in fresh))
    lines = ["### Counting modes by abundance (eval/hill_eval.py, exploration)", "",
             f"The shipped modes (raw text, cosine distance {THRESHOLD}) of RESULTS.md's corpora and of the fresh "
             "HWU64 scenarios, equal sizes per dataset. `headline`: expected distinct modes at 100 / 100 (order 0); "
             "`hill_1`: exp(entropy of the mode shares) / n; `hill_2`: inverse Simpson / n; `vendi` for reference. "
             "Spearman with the known order, mean over datasets. Nothing tuned; no default changed.", "",
             *family_table(results, METRICS, groups), "", *guidance(results, groups[0])]
    text = "\n".join(lines) + "\n"
    (RESULTS / "hill.md").write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> None:
    from eval.size_eval import FRESH

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default=f"clinc150,hwu64,within,{FRESH}")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path("eval/results/cache"))
    parser.add_argument("--from-json", action="store_true")
    args = parser.parse_args(argv)
    if args.from_json:
        print(render(json.loads((RESULTS / "hill.json").read_text())["results"]))
        return
    from clusterdiv.core.cache import ModelCache
    from eval.corpora import load_datasets

    with ModelCache(args.cache_dir) as cache:
        results = [study(ds, reps=args.reps, cache=cache) for ds in load_datasets(args.data, args.datasets)]
    (RESULTS / "hill.json").write_text(json.dumps({"threshold": THRESHOLD, "reps": args.reps, "results": results},
                                                  indent=1) + "\n", encoding="utf-8")
    print(render(results))


if __name__ == "__main__":
    main()
