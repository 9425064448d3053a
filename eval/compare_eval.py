"""Does `compare` rank batches of 3 / 10 / all intents of one domain, with the extreme pair significant?

For every single-domain dataset with more than 10 intents (the CLINC150 domains and the HINT3
datasets), three batches of real utterances are drawn from 3, 10 and all intents (even shares,
disjoint seeded draws) and compared in one shared clustering with the product's `compare` at its
defaults (permutation tests with Holm adjustment). Nothing here was tuned: the representation and
threshold are the shipped defaults chosen in eval/validate.py. Beside the modes' ranking and test,
the same report's Vendi ranking and Vendi permutation test (the `vendi` metric is the only one
computed) are recorded, so the two are measured on the same batches.

    python -m eval.compare_eval --data ../shared/data [--representation criteria --model local/smollm2]
    python -m eval.compare_eval --render   # the table again from eval/results/compare_within.json
    python -m eval.compare_eval --null --reps 5   # calibration: two draws of the same mix (compare_null.*)

`--null` checks the tests' calibration instead of their power: two disjoint batches drawn the same
way from every intent, so any significant difference is a false alarm; at alpha 0.05 a calibrated
test raises one in about 5% of runs.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from eval.corpora import fill, intent_order, load_datasets

RESULTS = Path(__file__).parent / "results"


LEVELS = (("all", 0), ("10 intents", 10), ("3 intents", 3))  # 0 = every intent
NULL_LEVELS = (("draw A", 0), ("draw B", 0))


def batches_for(ds, n: int, rep: int, levels=LEVELS) -> dict[str, list[str]]:
    order = intent_order(ds, rep)
    used: set[str] = set()
    out = {}
    for name, k in ((name, k or len(order)) for name, k in levels):
        need = -(-n // k)
        chosen = [i for i in order if len([r for r in ds.pool[i] if r.text not in used]) >= need][:k]
        if len(chosen) < k:
            return {}
        pool = {i: [r for r in ds.pool[i] if r.text not in used] for i in chosen}
        counts = fill(n, chosen, pool)
        texts = [r.text for i, c in counts.items() for r in random.Random(rep).sample(pool[i], c)]
        if len(texts) < n:
            return {}
        used |= set(texts)
        out[name] = texts
    return out


def comparisons(args: argparse.Namespace, levels, config, *, min_intents: int = 0):
    """(dataset, rep, n, report) for every dataset and repetition that has enough data for disjoint batches."""
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.tasks.compare import compare

    with ModelCache(args.cache_dir) as cache:
        for ds in load_datasets(args.data, args.datasets):
            if len(ds.intents) <= min_intents:
                continue
            n = min(args.n, 60) if ds.name.startswith("hint3") else args.n
            for rep in range(args.reps):
                batches = batches_for(ds, n, rep, levels)
                if not batches:
                    print(f"{ds.name} rep {rep}: not enough data for {len(levels)} disjoint batches of {n}", flush=True)
                    continue
                yield ds, rep, n, compare(batches, config=config, cache=cache)


def by_dataset(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r["dataset"], []).append(r)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="clinc150:*,hint3:*")
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--representation", default=None, help="text, criteria or hybrid (default: the product's)")
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--cache-dir", type=Path, default=Path("eval/results/cache"))
    parser.add_argument("--name", default="compare_within")
    parser.add_argument("--render", action="store_true", help="redraw the table from the saved JSON only")
    parser.add_argument("--null", action="store_true", help="two draws of the same mix: the tests' false alarms")
    args = parser.parse_args(argv)
    if args.null:
        null_study(args)
        return
    if args.render:
        render(json.loads((RESULTS / f"{args.name}.json").read_text(encoding="utf-8")), args.n, args.name)
        return

    from clusterdiv.llm.structured import LLMSettings
    from clusterdiv.modes.config import ScoreConfig

    overrides = {"representation": {"kind": args.representation}} if args.representation else {}
    config = ScoreConfig(llm=LLMSettings(model=args.model), metrics="vendi", **overrides)
    runs = []
    for ds, rep, n, report in comparisons(args, LEVELS, config, min_intents=10):
        scores = {b.name: b.score_normalized for b in report.batches}
        ranked = [b.name for b in sorted(report.batches, key=lambda b: b.rank)]
        extreme = next(p for p in report.pairwise if {p.a, p.b} == {"all", "3 intents"})
        vendi_extreme = next(p for p in report.vendi_pairwise if {p.a, p.b} == {"all", "3 intents"})
        vendi = {b.name: b.metrics["vendi"]["value"] for b in report.batches}
        vendi_ranked = [b.name for b in sorted(report.batches, key=lambda b: b.vendi_rank)]
        runs.append({"dataset": ds.name, "rep": rep, "n": n, "scores": scores, "ranked": ranked,
                     "correct_order": ranked == ["all", "10 intents", "3 intents"],
                     "extreme_p_adjusted": extreme.p_adjusted, "extreme_significant": extreme.significant,
                     "pairwise": [p.model_dump() for p in report.pairwise],
                     "vendi": vendi, "vendi_ranked": vendi_ranked,
                     "vendi_correct_order": vendi_ranked == ["all", "10 intents", "3 intents"],
                     "vendi_extreme_p_adjusted": vendi_extreme.p_adjusted,
                     "vendi_extreme_significant": vendi_extreme.significant,
                     "vendi_pairwise": [p.model_dump() for p in report.vendi_pairwise],
                     "representation": report.modes_from.model_dump() if report.modes_from else None})
        r = runs[-1]
        print(f"{ds.name} rep {rep}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
              + f"; order {'ok' if r['correct_order'] else 'WRONG'}; all vs 3 p_adj {extreme.p_adjusted:.3f}"
              + f"; Vendi order {'ok' if r['vendi_correct_order'] else 'WRONG'}, p_adj "
              f"{vendi_extreme.p_adjusted:.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    render(runs, args.n, args.name)


def null_study(args: argparse.Namespace) -> None:
    """False alarms: both tests on two disjoint draws of the same intent mix (one pair, no adjustment)."""
    from clusterdiv.modes.config import ScoreConfig

    name = args.name if args.name != "compare_within" else "compare_null"
    path = RESULTS / f"{name}.json"
    if args.render:
        runs = json.loads(path.read_text(encoding="utf-8"))
    else:
        runs = []
        for ds, rep, n, report in comparisons(args, NULL_LEVELS, ScoreConfig(metrics="vendi")):
            modes, vendi = report.pairwise[0], report.vendi_pairwise[0]
            runs.append({"dataset": ds.name, "rep": rep, "n": n, "modes_p": modes.p_value,
                         "vendi_p": vendi.p_value, "modes_difference": modes.difference,
                         "vendi_difference": vendi.difference})
            print(f"{ds.name} rep {rep}: modes p {modes.p_value:.3f}, Vendi p {vendi.p_value:.3f}", flush=True)
        path.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    lines = ["### `compare` on two draws of the same mix (false alarms)", "",
             f"Two disjoint batches drawn the same way from every intent of one domain ({args.n} utterances each, "
             "60 for HINT3), compared at the shipped defaults; one pair, so no adjustment. Share of runs with "
             "p < 0.05 and p < 0.01 (a calibrated test: about 5% and 1%).", "",
             "| dataset | runs | modes p < 0.05 | modes p < 0.01 | Vendi p < 0.05 | Vendi p < 0.01 |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    by_ds = by_dataset(runs)

    def row(label: str, rs: list[dict]) -> str:
        cells = [f"{sum(r[k] < a for r in rs)}/{len(rs)}" for k in ("modes_p", "vendi_p") for a in (0.05, 0.01)]
        return f"| {label} | {len(rs)} | " + " | ".join(cells) + " |"

    lines += [row(ds, rs) for ds, rs in by_ds.items()] + [row("**all**", runs)]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def render(runs: list[dict], n: int, name: str) -> None:
    """The markdown table, from the saved runs (`--render` redraws it without models)."""
    kind = runs[0]["representation"]["kind"] if runs and runs[0]["representation"] else "?"
    lines = [f"### `compare` within one domain (representation `{kind}`)", "",
             f"Three disjoint batches per dataset and repetition: all intents, 10 and 3 intents ({n} "
             "utterances each, 60 for HINT3), compared in one shared clustering at the shipped defaults. "
             "Modes: `score_normalized` and its permutation test; Vendi: the same report's Vendi and its "
             "permutation test on the text embeddings (both Holm-adjusted over the three pairs).", "",
             "| dataset | reps | modes: order all > 10 > 3 | modes: all vs 3 significant | mean scores all / 10 / 3 "
             "| Vendi: order | Vendi: all vs 3 significant | mean Vendi all / 10 / 3 |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    by_ds = by_dataset(runs)
    keys = ("all", "10 intents", "3 intents")

    def row(label: str, rs: list[dict], means: bool) -> str:
        count = {k: f"{sum(r[k] for r in rs)}/{len(rs)}" for k in (
            "correct_order", "extreme_significant", "vendi_correct_order", "vendi_extreme_significant")}
        mean = {f: " / ".join(f"{sum(r[f][k] for r in rs) / len(rs):.{p}f}" for k in keys) if means else ""
                for f, p in (("scores", 3), ("vendi", 1))}
        return (f"| {label} | {len(rs)} | {count['correct_order']} | {count['extreme_significant']} | "
                f"{mean['scores']} | {count['vendi_correct_order']} | {count['vendi_extreme_significant']} | "
                f"{mean['vendi']} |")

    lines += [row(ds, rs, True) for ds, rs in by_ds.items()]
    lines.append(row("**all**", runs, False))

    def right(key: str, a: str, b: str) -> str:
        """Runs where the a-vs-b test is significant with a ahead (a is listed first in every pair)."""
        hits = sum(p["significant"] and p["difference"] > 0 for r in runs for p in r[key] if (p["a"], p["b"]) == (a, b))
        return f"{hits}/{len(runs)}"

    lines += ["", "Every pair, significant (Holm) in the right direction, modes / Vendi: all vs 10 intents "
              f"{right('pairwise', 'all', '10 intents')} / {right('vendi_pairwise', 'all', '10 intents')}, "
              f"10 vs 3 {right('pairwise', '10 intents', '3 intents')} / "
              f"{right('vendi_pairwise', '10 intents', '3 intents')}, all vs 3 {right('pairwise', 'all', '3 intents')}"
              f" / {right('vendi_pairwise', 'all', '3 intents')}. The two orders disagree in "
              f"{sum(r['ranked'] != r['vendi_ranked'] for r in runs)} of {len(runs)} runs; the report warns there."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
