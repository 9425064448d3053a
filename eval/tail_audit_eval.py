"""Does `audit-tail` flag the tail entries a batch really lost? Precision/recall on CLINC150.

CLINC150 is balanced, so the tail is made: pick 2K intents, make them rare in a real reference
sample (`--rare-count` examples each, versus `--common-count` for every other intent), and remove
K of them from the batch (the stand-in for a synthetic batch that lost part of its tail). The
audit then derives the tail from the reference alone (its `--tail-size` = 2K rarest labels, the
real examples as seeds, the label name as description) and flags entries covered by fewer than
`--min-count` batch examples. Ground truth: the K removed intents. A flagged entry that was not
removed is a false alarm; a removed one not flagged is a miss.

Default judge is `embedding`: the LLM judge would cost up to 2K x `judge_top` calls per seed
(e.g. 20 x 50 = 1,000) on the bundled 135M local model, tens of minutes on 2 CPU cores; pass
`--judge both --model ...` to measure it with a faster model.

    python -m eval.tail_audit_eval --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def make_split(rows: list[dict], *, k: int, rare_count: int, common_count: int, batch_size: int, seed: int
               ) -> tuple[list[dict], list[dict], list[str], list[str]]:
    rng = random.Random(seed)
    intents = sorted({r["intent"] for r in rows})
    tail = rng.sample(intents, 2 * k)
    removed, kept = sorted(tail[:k]), sorted(tail[k:])
    train = [r for r in rows if r["split"] == "train"]
    held_out = [r for r in rows if r["split"] != "train"]
    reference = []
    for intent in intents:
        pool = [r for r in train if r["intent"] == intent]
        reference += rng.sample(pool, rare_count if intent in tail else common_count)
    batch_pool = [r for r in held_out if r["intent"] not in set(removed)]
    batch = rng.sample(batch_pool, batch_size)
    return reference, batch, removed, kept


def scores(entries: list[dict], removed: list[str], min_count: int) -> dict:
    flagged = {e["name"] for e in entries if e["count"] < min_count}
    truth = set(removed)
    hits = flagged & truth
    return {
        "min_count": min_count,
        "flagged": sorted(flagged),
        "precision": len(hits) / len(flagged) if flagged else None,
        "recall": len(hits) / len(truth),
        "false_alarms": sorted(flagged - truth),
        "missed": sorted(truth - flagged),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--k", type=int, default=10, help="intents removed from the batch")
    parser.add_argument("--rare-count", type=int, default=4)
    parser.add_argument("--common-count", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1500)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--min-counts", default="1,2,3")
    parser.add_argument("--judge", default="embedding")
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--judge-top", type=int, default=50)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--name", default="tail_audit", help="results file stem under eval/results/")
    args = parser.parse_args(argv)

    from clusterdiv.core.cache import ModelCache
    from clusterdiv.modes.embed import Embedder
    from clusterdiv.tasks.anchoring import audit_tail

    rows = [json.loads(line) for line in (args.data / "clinc150.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r.get("intent") not in (None, "oos")]
    min_counts = [int(x) for x in args.min_counts.split(",")]
    embedder = Embedder()
    runs = []
    with tempfile.TemporaryDirectory() as tmp, ModelCache(args.cache_dir or Path(tmp) / "cache") as cache:
        for seed in (int(s) for s in args.seeds.split(",")):
            reference, batch, removed, kept = make_split(
                rows, k=args.k, rare_count=args.rare_count, common_count=args.common_count,
                batch_size=args.batch_size, seed=seed)
            ref_path, batch_path = Path(tmp) / f"reference_{seed}.jsonl", Path(tmp) / f"batch_{seed}.jsonl"
            for path, data in ((ref_path, reference), (batch_path, batch)):
                path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
            started = time.perf_counter()
            report = audit_tail(
                batch_path, reference=ref_path, tail_size=2 * args.k, judge=args.judge, model=args.model,
                judge_top=args.judge_top, embedding_model=embedder, min_count=1, seed=seed, cache=cache,
                load_options={"id_field": "id"}, reference_load_options={"label_field": "intent"},
            )
            elapsed = time.perf_counter() - started
            section = report.tail_audit
            calibration = section["calibration"]
            entries = section["entries"]
            derived = {e["name"] for e in entries}
            truth_in_batch = {i: sum(r["intent"] == i for r in batch) for i in kept}
            runs.append({
                "seed": seed,
                "removed": removed,
                "kept_rare": kept,
                "tail_derived_correctly": derived == set(removed) | set(kept),
                "counts": {e["name"]: e["count"] for e in entries},
                "true_counts_of_kept": truth_in_batch,
                "by_min_count": [scores(entries, removed, m) for m in min_counts],
                "llm_calls": section["llm_calls"],
                "seconds": round(elapsed, 1),
            })
            print(f"seed {seed}: " + "; ".join(
                f"min_count {s['min_count']}: P={s['precision']} R={s['recall']}" for s in runs[-1]["by_min_count"]))

    summary = []
    for m in min_counts:
        per = [next(s for s in r["by_min_count"] if s["min_count"] == m) for r in runs]
        flagged = sum(len(s["flagged"]) for s in per)
        hits = sum(len(set(s["flagged"]) & set(r["removed"])) for s, r in zip(per, runs, strict=True))
        summary.append({"min_count": m, "precision": hits / flagged if flagged else None,
                        "recall": hits / (args.k * len(runs)), "flagged": flagged, "true_positives": hits})
    result = {
        "dataset": "clinc150 (oos excluded)",
        "setup": {
            "k_removed": args.k, "k_rare_but_present": args.k, "tail_size": 2 * args.k,
            "reference": f"train split: {args.rare_count} examples per tail intent, {args.common_count} per other "
                         "intent (so the 2K tail intents are the rarest labels)",
            "batch": f"{args.batch_size} examples from the val/test splits, the K removed intents excluded",
            "judge": args.judge, "judge_top": args.judge_top,
            "model": None if args.judge == "embedding" else args.model,
            "embedding_model": "all-MiniLM-L6-v2",
            "calibration": calibration,
        },
        "summary": summary,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        "### Tail audit on CLINC150 (derived tail, `--judge " + args.judge + "`)",
        "",
        f"{len(runs)} seeds; per seed: {2 * args.k} rare intents in a real reference ({args.rare_count} examples "
        f"each vs {args.common_count} for the other intents), {args.k} of them removed from a "
        f"{args.batch_size}-example batch. The tail is derived from the reference's {2 * args.k} rarest labels; "
        "an entry is flagged when fewer than `min_count` batch examples cover it.",
        "",
        "| min_count | flagged | true positives | precision | recall |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summary:
        p = "n/a" if s["precision"] is None else f"{s['precision']:.2f}"
        lines.append(f"| {s['min_count']} | {s['flagged']} | {s['true_positives']} | {p} | {s['recall']:.2f} |")
    lines += ["", f"Tail derived exactly (the {2 * args.k} rarest labels are the chosen intents) in "
                  f"{sum(r['tail_derived_correctly'] for r in runs)} of {len(runs)} runs; "
                  f"time per run {', '.join(str(r['seconds']) + ' s' for r in runs)} (cold embedding cache)."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
