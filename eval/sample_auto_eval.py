"""How large a sample does the headline need? Evidence for `score --sample auto` (issue 15, item 2).

The normalised score is the expected number of distinct modes among `reference_size` (100)
examples, divided by 100. For fixed mode labels, rarefying a seeded random sample of m examples to
100 is the same as drawing 100 from the whole set, so the sample's score is an unbiased estimate of
the full pass's; what sampling costs is variance, plus whatever the clustering of m points finds
differently from the clustering of all n. This script measures both on real data:

* for each dataset (CLINC150, 23,700 texts; HWU64, 11,036; Larson et al. 2019, Liu et al. 2019),
  the full pass's `score_normalized` and its interval (every text clustered, the any-size method);
* for nested seeded samples of m = 250 ... 8,000 and `--seeds` seeds: the sample's score, its
  bootstrap 95% interval width, and whether the interval covers the full pass's value.

The default text representation makes no LLM call, so this costs only embeddings (cached under
eval/results/cache). Raw results go to eval/results/sample_auto.json; the markdown is rendered from
it (`--from-json`).

    python eval/sample_auto_eval.py [--data ../shared/data] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "eval" / "results" / "sample_auto"
SIZES = (250, 500, 1000, 2000, 4000, 8000)


def load_texts(data: Path, name: str) -> list[str]:
    rows = [json.loads(line) for line in (data / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [r["text"] for r in rows]


def measure(texts: list[str], *, seeds: int, cache_dir: Path) -> dict:
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.modes.cluster import ClusterParams, cluster_vectors
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.modes.embed import Embedder, embed_texts
    from clusterdiv.modes.scoring import score_labels
    from clusterdiv.tasks.score import score

    params = ClusterParams().for_representation("text")
    with ModelCache(cache_dir) as cache:
        X = np.asarray(embed_texts(texts, model=Embedder(), cache=cache), dtype=np.float32)
    t0 = time.perf_counter()
    full = score_labels(cluster_vectors(X, params=params, seed=0).labels, seed=0)
    full_s = time.perf_counter() - t0
    rows = []
    for seed in range(seeds):
        order = np.random.default_rng(1000 + seed).permutation(len(texts))
        for m in SIZES:
            if m >= len(texts):
                continue
            idx = np.sort(order[:m])
            t0 = time.perf_counter()
            s = score_labels(cluster_vectors(X[idx], params=params, seed=seed).labels, seed=seed)
            lo, hi = s.ci95_normalized
            rows.append({"seed": seed, "m": m, "score_normalized": s.score_normalized, "lo": lo, "hi": hi,
                         "width": hi - lo, "covers_full": lo <= full.score_normalized <= hi,
                         "seconds": time.perf_counter() - t0})
    auto = []
    with ModelCache(cache_dir) as cache:  # the shipped policy end to end, through the library
        for seed in range(seeds):
            t0 = time.perf_counter()
            r = score(texts, config=ScoreConfig(metrics="none", seed=seed, sample="auto"), cache=cache)
            lo, hi = r.ci95_normalized
            auto.append({"seed": seed, "scored": r.sampling.scored, "steps": [s.scored for s in r.sampling.steps],
                         "score_normalized": r.score_normalized, "lo": lo, "hi": hi,
                         "covers_full": lo <= full.score_normalized <= hi, "seconds": time.perf_counter() - t0})
    return {"n": len(texts), "full": {"score_normalized": full.score_normalized, "ci95": full.ci95_normalized,
                                      "n_modes": full.n_modes, "seconds": full_s}, "samples": rows, "auto": auto}


def render(results: dict) -> str:
    lines = ["### How large a sample the headline needs (`--sample auto`)", "",
             "Text representation, shipped defaults. Per dataset: the full pass (every text), then nested seeded "
             f"samples ({results['seeds']} seeds each): mean sample score, its spread across seeds (sd), the mean "
             "bootstrap 95% interval width, and how often that interval covers the full pass's value.", ""]
    for name, res in results["datasets"].items():
        full = res["full"]
        lines += [f"**{name}** (n = {res['n']:,}): full pass `score_normalized` {full['score_normalized']:.3f} "
                  f"[{full['ci95'][0]:.3f}, {full['ci95'][1]:.3f}], {full['n_modes']:,} modes, clustered in "
                  f"{full['seconds']:.1f} s", "",
                  "| m | mean score | sd across seeds | bias vs full | mean interval width | covers full | cluster+score s |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for m in sorted({r["m"] for r in res["samples"]}):
            rs = [r for r in res["samples"] if r["m"] == m]
            scores = [r["score_normalized"] for r in rs]
            sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
            mean = statistics.fmean(scores)
            lines.append(f"| {m:,} | {mean:.3f} | {sd:.4f} | {mean - full['score_normalized']:+.4f} | "
                         f"{statistics.fmean(r['width'] for r in rs):.4f} | "
                         f"{sum(r['covers_full'] for r in rs)}/{len(rs)} | "
                         f"{statistics.fmean(r['seconds'] for r in rs):.2f} |")
        auto = res.get("auto") or []
        if auto:
            full_v = full["score_normalized"]
            lines += ["", f"`--sample auto` as shipped (first sample {auto[0]['steps'][0]:,}, interval width 0.02), "
                      f"{len(auto)} seeds: scored {', '.join(format(a['scored'], ',') for a in auto)}; score "
                      f"{statistics.fmean(a['score_normalized'] for a in auto):.3f} "
                      f"(mean |error| vs full {statistics.fmean(abs(a['score_normalized'] - full_v) for a in auto):.4f}, "
                      f"worst {max(abs(a['score_normalized'] - full_v) for a in auto):.4f}); interval covers the full "
                      f"pass {sum(a['covers_full'] for a in auto)}/{len(auto)}; "
                      f"{statistics.fmean(a['seconds'] for a in auto):.1f} s per warm run."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "eval" / "results" / "cache")
    ap.add_argument("--from-json", action="store_true")
    args = ap.parse_args()
    if not args.from_json:
        results = {"seeds": args.seeds, "datasets": {}}
        for name in ("hwu64", "clinc150"):
            results["datasets"][name] = measure(load_texts(args.data, name), seeds=args.seeds,
                                                cache_dir=args.cache_dir)
            print(name, "done", flush=True)
        OUT.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    results = json.loads(OUT.with_suffix(".json").read_text(encoding="utf-8"))
    OUT.with_suffix(".md").write_text(render(results), encoding="utf-8")
    print(render(results))


if __name__ == "__main__":
    main()
