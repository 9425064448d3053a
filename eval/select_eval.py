"""Does `clusterdiv select` keep more of what a model needs than a random subset or embedding dedup?

    python -m eval.select_eval --data ../shared/data --out eval/results/   # select.md, select_seeds.md

The batch to select from is a collapsed stand-in for a synthetic batch, built from real, labelled
utterances (CLINC150, HWU64; eval/corpora.py splits): intents in a seeded order get Zipf-like
counts (intent k: max(3, ceil(A (k+1)^-0.8)) examples), so a few intents dominate and most are
rare, as in a generator that regressed to its favourite modes. From it, subsets of one size N are
chosen four ways:

* `random`: a seeded random sample;
* `dedup`: distilabel-style nearest-neighbour dedup: in a seeded random order, keep an example
  unless its MiniLM cosine to an example already kept exceeds t; t is the smallest value (bisection)
  that keeps at least N, and the first N kept are the subset;
* `select`: `clusterdiv select --budget N` (raw-text modes, no reference);
* `select+ref`: `clusterdiv select --budget N --reference REAL` with a small balanced real sample
  (5 per intent, disjoint from the batch and the test split).

Each subset trains the downstream harness's classifier (eval/downstream.py `downstream_utility`:
seeded logistic regression on frozen MiniLM vectors, labels = gold intents) and is tested on the
dataset's real test split, which covers every intent: accuracy, macro recall (the mean per-intent
accuracy; an intent the subset lacks scores 0) and tail recall (the same over the third of the
intents rarest in the batch). Three seeds (batch order, random subset, dedup order, select ties).
Gold labels are used only for training and scoring the classifier, never by any selector.
Data: CLINC150 (Larson et al., 2019; CC BY 3.0), HWU64 (Liu et al., 2019; CC BY 4.0).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = {"clinc150": {"heldout": 30, "budget": 450}, "hwu64": {"heldout": 20, "budget": 256}}
REF_PER_INTENT = 5
ZIPF_A, ZIPF_S, MIN_PER_INTENT = 100, 0.8, 3
METHODS = ("random", "dedup", "select", "select+ref")


def build_batch(pool: dict[str, list[Any]], *, seed: int) -> tuple[list[Any], list[Any], dict[str, int]]:
    """The collapsed batch (front of each intent's ordering) and the reference (its back), disjoint."""
    intents = sorted(pool)
    random.Random(seed).shuffle(intents)
    batch, reference, counts = [], [], {}
    for k, intent in enumerate(intents):
        rows = pool[intent]
        room = max(0, len(rows) - REF_PER_INTENT)
        n = min(room, max(MIN_PER_INTENT, math.ceil(ZIPF_A * (k + 1) ** -ZIPF_S)))
        batch += rows[:n]
        reference += rows[len(rows) - REF_PER_INTENT:]
        counts[intent] = n
    return batch, reference, counts


def greedy_dedup(vectors: np.ndarray, order: list[int], threshold: float) -> list[int]:
    kept: list[int] = []
    for i in order:
        if kept and float((vectors[kept] @ vectors[i]).max()) > threshold:
            continue
        kept.append(i)
    return kept


def dedup_subset(vectors: np.ndarray, budget: int, *, seed: int) -> tuple[list[int], float]:
    order = list(range(len(vectors)))
    random.Random(seed).shuffle(order)
    lo, hi = 0.0, 1.0001  # kept(t) grows with t; find the smallest t keeping >= budget
    for _ in range(18):
        mid = (lo + hi) / 2
        if len(greedy_dedup(vectors, order, mid)) >= budget:
            hi = mid
        else:
            lo = mid
    return greedy_dedup(vectors, order, hi)[:budget], hi


def run(data: Path, out: Path, seeds: list[int]) -> dict[str, Any]:
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.core.records import Example
    from clusterdiv.tasks.actions import select_subset
    from eval.corpora import load_dataset
    from eval.downstream import DEFAULT_CACHE, downstream_utility, embed

    results: dict[str, Any] = {"config": {"zipf": [ZIPF_A, ZIPF_S, MIN_PER_INTENT], "ref_per_intent": REF_PER_INTENT,
                                          "seeds": seeds, "datasets": DATASETS}, "datasets": {}}
    with ModelCache(DEFAULT_CACHE) as cache:
        for name, spec in DATASETS.items():
            ds = load_dataset(data / f"{name}.jsonl", seed=0, heldout_per_intent=spec["heldout"])
            test_texts = [r.text for r in ds.heldout]
            test_labels = [r.intent for r in ds.heldout]
            runs = []
            for seed in seeds:
                t0 = time.perf_counter()
                batch, reference, counts = build_batch(ds.pool, seed=seed)
                by_rarity = sorted(counts, key=lambda i: (counts[i], i))
                tail = set(by_rarity[: len(by_rarity) // 3])
                texts = [r.text for r in batch]
                labels = [r.intent for r in batch]
                X = embed(texts, cache=cache)
                vectors = {t: v for t, v in zip(texts, X, strict=True)}
                vectors |= dict(zip(test_texts, embed(test_texts, cache=cache), strict=True))
                N = spec["budget"]
                examples = [Example(id=r.id, text=r.text) for r in batch]
                ref_examples = [Example(id=r.id, text=r.text) for r in reference]
                pos = {r.id: k for k, r in enumerate(batch)}
                chosen: dict[str, list[int]] = {
                    "random": sorted(random.Random(seed).sample(range(len(batch)), N)),
                }
                d, dedup_t = dedup_subset(X, N, seed=seed)
                chosen["dedup"] = sorted(d)
                sel = select_subset(examples, budget=N, seed=seed, cache=cache, metrics="none")
                chosen["select"] = sorted(pos[i] for i in sel.selected_ids)
                sel_ref = select_subset(examples, budget=N, reference=ref_examples, seed=seed, cache=cache,
                                        metrics="none")
                chosen["select+ref"] = sorted(pos[i] for i in sel_ref.selected_ids)
                row: dict[str, Any] = {"seed": seed, "n_batch": len(batch), "budget": N, "n_tail": len(tail),
                                       "batch_intents": len(counts), "dedup_threshold": round(dedup_t, 4),
                                       "select_modes": sel.n_modes, "methods": {}}
                full = downstream_utility(texts, labels, test_texts, test_labels, tail_labels=tail, seed=seed,
                                          vectors=vectors)
                row["methods"]["full batch"] = {**full, "n": len(batch)}
                for method in METHODS:
                    idx = chosen[method]
                    assert len(idx) <= N
                    util = downstream_utility([texts[i] for i in idx], [labels[i] for i in idx], test_texts,
                                              test_labels, tail_labels=tail, seed=seed, vectors=vectors)
                    row["methods"][method] = {**util, "n": len(idx)}
                row["seconds"] = round(time.perf_counter() - t0, 1)
                runs.append(row)
                print(name, seed, {m: round(v["macro_recall"], 3) for m, v in row["methods"].items()},
                      f"{row['seconds']}s", flush=True)
            summary = {}
            for method in ("full batch", *METHODS):
                summary[method] = {}
                for key in ("accuracy", "macro_recall", "tail_recall", "train_intents", "n"):
                    vals = [r["methods"][method][key] for r in runs]
                    summary[method][key] = {"mean": statistics.fmean(vals),
                                            "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0}
            results["datasets"][name] = {"n_test": len(test_texts), "intents": len(ds.intents), "runs": runs,
                                         "summary": summary}
    out.mkdir(parents=True, exist_ok=True)
    (out / "select.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "select.md").write_text(render(results), encoding="utf-8")
    return results


def run_seeds(data: Path, out: Path, seeds: list[int], per_mode: int = 3) -> dict[str, Any]:
    """Proxy for the seeds claim without a generator: which intents would the next round be seeded with?

    For the same collapsed batch and reference, three ways to pick the next round's seed examples, all
    of one size (what `seeds` emits): `seeds` (clusterdiv seeds --per-mode 3), `previous batch` (a
    uniform sample of the batch itself: seeding round N+1 from round N) and `random real` (a uniform
    sample of the reference). Figures: tail intents (the third rarest in the batch) with at least one
    seed, the share of seeds from those intents, and the share of seeds that are batch texts.
    """
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.core.records import Example
    from clusterdiv.tasks.actions import tail_seeds
    from eval.corpora import load_dataset
    from eval.downstream import DEFAULT_CACHE

    results: dict[str, Any] = {"config": {"per_mode": per_mode, "seeds": seeds}, "datasets": {}}
    with ModelCache(DEFAULT_CACHE) as cache:
        for name, spec in DATASETS.items():
            ds = load_dataset(data / f"{name}.jsonl", seed=0, heldout_per_intent=spec["heldout"])
            runs = []
            for seed in seeds:
                batch, reference, counts = build_batch(ds.pool, seed=seed)
                tail = set(sorted(counts, key=lambda i: (counts[i], i))[: len(counts) // 3])
                intent_of = {r.id: r.intent for r in batch + reference}
                res = tail_seeds([Example(id=r.id, text=r.text) for r in batch],
                                 reference=[Example(id=r.id, text=r.text) for r in reference], per_mode=per_mode,
                                 seed=seed, cache=cache, metrics="none")
                emitted = [s.id for m in res.modes for s in m.seeds]
                k = len(emitted)
                rng = random.Random(seed)
                picks = {"seeds": emitted, "previous batch": [r.id for r in rng.sample(batch, min(k, len(batch)))],
                         "random real": [r.id for r in rng.sample(reference, min(k, len(reference)))]}
                batch_ids = {r.id for r in batch}
                row: dict[str, Any] = {"seed": seed, "n_seeds": k, "n_tail": len(tail), "n_lacking_modes": res.n_lacking,
                                       "reference_share_lacking": res.reference_share_lacking, "methods": {}}
                for method, ids in picks.items():
                    intents = [intent_of[i] for i in ids]
                    row["methods"][method] = {
                        "tail_intents_seeded": len(set(intents) & tail),
                        "tail_share_of_seeds": sum(i in tail for i in intents) / max(1, len(intents)),
                        "intents_seeded": len(set(intents)),
                        "synthetic_share_of_seeds": sum(i in batch_ids for i in ids) / max(1, len(ids)),
                    }
                runs.append(row)
                print(name, seed, k, {m: v["tail_intents_seeded"] for m, v in row["methods"].items()}, flush=True)
            summary = {m: {key: statistics.fmean(r["methods"][m][key] for r in runs)
                           for key in runs[0]["methods"][m]} for m in runs[0]["methods"]}
            results["datasets"][name] = {"runs": runs, "summary": summary,
                                         "n_seeds": statistics.fmean(r["n_seeds"] for r in runs),
                                         "n_tail": runs[0]["n_tail"]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "select_seeds.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = ["# Who seeds the next round? `seeds` vs the previous batch vs random real (eval/select_eval.py)", "",
             "Same collapsed batches as select.md; equal numbers of seed examples; means over seeds "
             f"{seeds}. No generation is run: this measures which intents a next round would be shown.", "",
             "| dataset | seeder | seeds | tail intents seeded | tail share of seeds | intents seeded | "
             "synthetic share of seeds |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, d in results["datasets"].items():
        for method, s in d["summary"].items():
            lines.append(f"| {name} | {method} | {d['n_seeds']:.0f} | {s['tail_intents_seeded']:.1f} of {d['n_tail']} | "
                         f"{s['tail_share_of_seeds']:.1%} | {s['intents_seeded']:.1f} | "
                         f"{s['synthetic_share_of_seeds']:.0%} |")
    (out / "select_seeds.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return results


def render(results: dict[str, Any]) -> str:
    lines = ["# `select` vs random vs nearest-neighbour dedup at equal size (eval/select_eval.py)", "",
             "Collapsed batch from real utterances (Zipf-like intent counts); subsets of one size; downstream "
             "classifier of eval/downstream.py tested on the real test split. Mean ± sd over seeds "
             f"{results['config']['seeds']}.", ""]
    for name, d in results["datasets"].items():
        r0 = d["runs"][0]
        lines += [f"## {name}: batch {r0['n_batch']} over {r0['batch_intents']} intents, budget {r0['budget']}, "
                  f"tail = {r0['n_tail']} rarest intents, test {d['n_test']}", "",
                  "| subset | n | intents kept | accuracy | macro recall | tail recall |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for method, s in d["summary"].items():
            def f(key: str, s: dict = s) -> str:
                return f"{s[key]['mean']:.3f} ± {s[key]['sd']:.3f}"
            lines.append(f"| {method} | {s['n']['mean']:.0f} | {s['train_intents']['mean']:.1f} | {f('accuracy')} | "
                         f"{f('macro_recall')} | {f('tail_recall')} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("eval/results"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--part", choices=("all", "select", "seeds"), default="all")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.part in ("all", "select"):
        run(args.data, args.out, seeds)
    if args.part in ("all", "seeds"):
        run_seeds(args.data, args.out, seeds)


if __name__ == "__main__":
    main()
