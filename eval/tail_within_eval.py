"""Does `audit-tail` flag named entries removed from a batch when their near neighbours stay?

The hard case inside one domain: a tail spec names 10 intents of one product (name, description,
3 real seeds each); the batch (real utterances) lost 5 of them, while the other intents of the
domain, which are near neighbours of the removed ones ("reset my password" removed, "why was my
password reset" kept), stay. A removed entry not flagged is a miss; a kept one flagged is a false
alarm. No setting is tuned here.

    python -m eval.tail_within_eval --data ../shared/data [--judge both --model local/smollm2]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from eval.corpora import load_datasets

RESULTS = Path(__file__).parent / "results"


def make_case(ds, *, n_entries: int, n_removed: int, batch_size: int, n_seeds: int, seed: int):
    rng = random.Random(seed)
    intents = sorted(ds.intents)
    entries = rng.sample(intents, n_entries)
    removed = sorted(entries[:n_removed])
    kept = sorted(entries[n_removed:])
    held = {}
    for r in ds.heldout:
        held.setdefault(r.intent, []).append(r.text)
    spec = []
    for intent in entries:
        seeds = held.get(intent, [])[:n_seeds] or [r.text for r in ds.pool[intent][-n_seeds:]]
        spec.append({"name": intent, "description": intent.replace("_", " ").lower(), "seeds": seeds})
    seed_texts = {s for e in spec for s in e["seeds"]}
    pool = [r for i in intents if i not in set(removed) for r in ds.pool[i] if r.text not in seed_texts]
    batch = rng.sample(pool, min(batch_size, len(pool)))
    return spec, batch, removed, kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="clinc150:*,hint3:*,hwu64:general")
    parser.add_argument("--entries", type=int, default=10)
    parser.add_argument("--removed", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=400)
    parser.add_argument("--n-seeds", type=int, default=3)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--judge", default="embedding")
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--judge-top", type=int, default=20)
    parser.add_argument("--cache-dir", type=Path, default=Path("eval/results/cache"))
    parser.add_argument("--name", default="tail_within")
    args = parser.parse_args(argv)

    from clusterdiv.anchoring import audit_tail
    from clusterdiv.cache import ModelCache
    from clusterdiv.embed import Embedder
    from clusterdiv.records import Example

    embedder = Embedder()
    runs = []
    with ModelCache(args.cache_dir) as cache:
        for ds in load_datasets(args.data, args.datasets):
            if len(ds.intents) < args.entries + 2:
                continue
            for seed in (int(s) for s in args.seeds.split(",")):
                spec, batch, removed, kept = make_case(ds, n_entries=args.entries, n_removed=args.removed,
                                                       batch_size=args.batch_size, n_seeds=args.n_seeds, seed=seed)
                report = audit_tail([Example(id=f"b{i}", text=r.text) for i, r in enumerate(batch)], spec=spec,
                                    judge=args.judge, model=args.model, judge_top=args.judge_top,
                                    embedding_model=embedder, min_count=args.min_count, cache=cache)
                section = report.tail_audit
                flagged = set(section["uncovered"]) | set(section["under"])
                hits = flagged & set(removed)
                truth = {i: sum(r.intent == i for r in batch) for i in kept}
                runs.append({"dataset": ds.name, "seed": seed, "removed": removed, "kept": kept,
                             "flagged": sorted(flagged), "true_positives": len(hits),
                             "precision": len(hits) / len(flagged) if flagged else None,
                             "recall": len(hits) / len(removed),
                             "counts": {e["name"]: e["count"] for e in section["entries"]},
                             "true_counts_of_kept": truth, "notes": section.get("notes", []),
                             "calibration": section["calibration"], "judge_trusted": section.get("judge_trusted"),
                             "judge_control_yes_rate": section.get("judge_control_yes_rate"),
                             "llm_calls": section["llm_calls"], "llm_cache_hits": section["llm_cache_hits"]})
                r = runs[-1]
                print(f"{ds.name} seed {seed}: flagged {len(flagged)}, TP {len(hits)}/{len(removed)}; counts "
                      + ", ".join(f"{k}={v}{'*' if k in removed else ''}" for k, v in r["counts"].items()), flush=True)
    flagged = sum(len(r["flagged"]) for r in runs)
    tp = sum(r["true_positives"] for r in runs)
    total = sum(len(r["removed"]) for r in runs)
    by_ds: dict[str, list[dict]] = {}
    for r in runs:
        by_ds.setdefault(r["dataset"], []).append(r)
    lines = [f"### Tail audit within one domain (`--judge {args.judge}`)", "",
             f"Per dataset and seed ({args.seeds}): a spec of {args.entries} intents of the domain (name, description, "
             f"{args.n_seeds} real seeds each); {args.removed} of them removed from a {args.batch_size}-utterance real "
             f"batch of the domain while all its other intents (their near neighbours) stay; flagged = covered by fewer "
             f"than {args.min_count} batch examples.", "",
             "| dataset | runs | flagged | true positives | precision | recall |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, rs in by_ds.items():
        f = sum(len(r["flagged"]) for r in rs)
        t = sum(r["true_positives"] for r in rs)
        lines.append(f"| {name} | {len(rs)} | {f} | {t} | {t / f if f else float('nan'):.2f} | "
                     f"{t / sum(len(r['removed']) for r in rs):.2f} |")
    lines.append(f"| **all** | {len(runs)} | {flagged} | {tp} | {tp / flagged if flagged else float('nan'):.2f} | "
                 f"{tp / total:.2f} |")
    judged = [r for r in runs if r["judge_trusted"] is not None]
    if judged:
        rates = ", ".join(f"{r['judge_control_yes_rate']:.0%}" for r in judged)
        lines += ["", f"LLM judge `{args.model}` calibration: trusted in {sum(r['judge_trusted'] for r in judged)} of "
                      f"{len(judged)} runs; it called {rates} of its negative controls (the examples least like each "
                      "entry) members, so where it was not trusted coverage was decided by the embedding rule. "
                      f"{sum(r['llm_calls'] + r['llm_cache_hits'] for r in judged)} judgements in all."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
