"""Who seeds the next round? A real round of generation from `seeds`, the previous batch, or random real.

    nice -n 10 python -m eval.seeds_round --data ../shared/data --out eval/results/
    python -m eval.seeds_round --from-json eval/results/seeds_round.json   # renders seeds_round.md

The previous synthetic batch is eval/generate.py's `recursive_replace` round 1 (clinc150:banking, six
intents, two of them rare in the real round 0): the real generator (SmolLM2-135M, cached in
eval/results/generate.json) already lost both tail intents there. The next round is seeded three ways,
each with the same number S of seed examples (S = what `seeds` emits):

* `seeds`: `clusterdiv.tasks.actions.tail_seeds(previous batch, reference=REAL, per_mode=K)` (raw-text
  modes, no LLM call): real examples of every mode the batch lacks or under-covers;
* `previous batch`: S examples drawn from the previous synthetic batch (what a naive loop does);
* `random real`: S examples drawn uniformly from REAL (the control).

REAL is the first `--ref-per-intent` pool examples of each of the six intents (disjoint from the
test split). Every seeder then runs the same round as generate.py's recursion: `--calls` calls at the
recursion's temperature, each picks a parent seed uniformly, asks for the parent's intent (the real
label of a real seed, the asked-for intent of a synthetic one) and shows up to three seeds of that
intent. Labels of the generated examples are the intent each call asked for, as in generate.py. Each
round is scored by generate.py's `score_batch`: intents and tail intents present, the default headline
`score_normalized` with its 95% interval, and the downstream classifier (eval/downstream.py) trained on
the round and tested on the real held-out split (macro recall, tail recall). Every LLM answer is
cached (eval/results/cache), so a rerun is free and writes the same JSON; the run's cost goes to
seeds_round_cost.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from eval import downstream as D
from eval import generate as G

SEEDERS = ("seeds", "previous batch", "random real")


def seed_sets(prev: list[tuple[str, str]], reference: list[tuple[str, str, str]], *, per_mode: int, rep: int,
              cache: Any) -> tuple[dict[str, list[tuple[str, str, bool]]], dict[str, Any]]:
    """Seeder -> [(text, intent, synthetic?)], all of one size; and what `seeds` reported."""
    from clusterdiv.core.records import Example
    from clusterdiv.tasks.actions import tail_seeds

    res = tail_seeds([Example(id=f"syn{k}", text=t) for k, (t, _) in enumerate(prev)],
                     reference=[Example(id=i, text=t) for i, t, _ in reference], per_mode=per_mode,
                     seed=rep, cache=cache, metrics="none")
    by_id = {i: (t, intent) for i, t, intent in reference}
    emitted = [s.id for m in res.modes for s in m.seeds]
    k = len(emitted)
    rng = random.Random(G.call_seed("seeds_round", "sets", rep))
    sets = {"seeds": [(*by_id[i], False) for i in emitted],
            "previous batch": [(t, i, True) for t, i in rng.sample(prev, min(k, len(prev)))],
            "random real": [(t, i, False) for _, t, i in rng.sample(reference, min(k, len(reference)))]}
    report = {"n_modes": res.n_modes, "n_lacking": res.n_lacking, "n_missing": res.n_missing,
              "reference_share_lacking": round(res.reference_share_lacking, 4), "excluded": res.excluded,
              "modes": [{"flag": m.flag, "reference_share": round(m.reference_share, 4),
                         "batch_share": round(m.batch_share, 4),
                         "seed_intents": dict(sorted(Counter(by_id[s.id][1] for s in m.seeds).items()))}
                        for m in res.modes]}
    return sets, report


def one_round(gen: G.Generator, seeds: list[tuple[str, str, bool]], *, seeder: str, rep: int, calls: int,
              temperature: float) -> list[tuple[str, str]]:
    """generate.py's recursion step, seeded from `seeds`: a uniform parent per call, its intent, 3 shown."""
    by_intent: dict[str, list[str]] = {}
    for text, intent, _ in seeds:
        by_intent.setdefault(intent, []).append(text)
    rng = random.Random(G.call_seed("seeds_round", seeder, rep))
    rows: list[tuple[str, str]] = []
    for j in range(calls):
        _, intent, _ = rng.choice(seeds)
        candidates = sorted(set(by_intent[intent]))
        shown = rng.sample(candidates, min(3, len(candidates)))
        for u in gen.ask(intent, shown, temperature=temperature, seed=G.call_seed("seeds_round", seeder, rep, j)):
            rows.append((u, intent))
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from clusterdiv.core.cache import ModelCache
    from eval.corpora import SUBSET_FIELD, load_dataset

    generated = json.loads((args.out / "generate.json").read_text())
    base, _, subset = generated["dataset"].partition(":")
    ds = load_dataset(args.data / f"{base}.jsonl", heldout_per_intent=args.test_per_intent, subset=subset or None,
                      subset_field=SUBSET_FIELD.get(base) if subset else None, name=generated["dataset"])
    intents, tails = generated["intents"], generated["tails"]
    pool = {i: [r.text for r in ds.pool[i]] for i in intents}
    test = [(r.text, r.intent) for r in ds.heldout if r.intent in set(intents)]
    prev_batch = next(b for b in generated["batches"]
                      if b["regime"] == "recursive_replace" and b["round"] == args.prev_round)
    prev = [(t, i) for t, i in prev_batch["examples"]]
    reference = [(f"real:{i}:{k}", t, i) for i in intents for k, t in enumerate(pool[i][: args.ref_per_intent])]
    temperature = generated["settings"]["recursion_temperature"]

    def log(msg: str) -> None:
        print(f"  [seeds_round] {msg}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    cache = ModelCache(args.cache_dir)
    gen = G.Generator(model=generated["model"], cache=cache, log=log)
    real_rows = [(t, i) for i in intents for t in pool[i]]
    clf = LogisticRegression(C=10.0, max_iter=2000, random_state=0)
    clf.fit(D.embed([t for t, _ in real_rows], cache=cache).astype(np.float64), [i for _, i in real_rows])
    real_texts = {t for t, _ in real_rows}

    def score(rows: list[tuple[str, str]], seed: int) -> dict[str, Any]:
        return G.score_batch(rows, test=test, tails=set(tails), intents=intents, real_clf=clf,
                             real_texts=real_texts, cache=cache, seed=seed)

    previous = {"round": args.prev_round, **score(prev, 0), "examples": [list(r) for r in prev]}
    reps = []
    for rep in args.reps:
        sets, report = seed_sets(prev, reference, per_mode=args.per_mode, rep=rep, cache=cache)
        rounds = []
        for seeder in SEEDERS:
            s = sets[seeder]
            rows = one_round(gen, s, seeder=seeder, rep=rep, calls=args.calls, temperature=temperature)
            counts = Counter(i for _, i, _ in s)
            rounds.append({"seeder": seeder, "n_seeds": len(s), "seed_intents": dict(sorted(counts.items())),
                           "tail_seeds": sum(counts.get(t, 0) for t in tails),
                           "synthetic_seeds": sum(1 for *_, syn in s if syn),
                           "asked": dict(sorted(Counter(i for _, i in rows).items())),
                           **score(rows, rep), "examples": [list(r) for r in rows]})
            log(f"rep {rep} {seeder}: {len(rows)} examples, {gen.stats.calls} calls so far")
        reps.append({"rep": rep, "seeds_report": report, "rounds": rounds})
    cost = {"model_calls": gen.stats.calls, "cache_hits": gen.stats.cache_hits, "failures": gen.stats.failures,
            "completion_tokens": gen.stats.completion_tokens, "llm_s": round(gen.seconds, 1),
            "wall_s": round(time.perf_counter() - started, 1)}
    cache.close()
    result = {"dataset": generated["dataset"], "model": generated["model"], "intents": intents, "tails": tails,
              "settings": {"prev_round": args.prev_round, "per_mode": args.per_mode, "calls": args.calls,
                           "per_call": G.PER_CALL, "temperature": temperature,
                           "ref_per_intent": args.ref_per_intent, "test_per_intent": args.test_per_intent,
                           "reps": list(args.reps)},
              "previous_batch": previous, "reps": reps}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "seeds_round.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    cost_file = args.out / "seeds_round_cost.json"
    before = json.loads(cost_file.read_text()) if cost_file.exists() else {}
    if cost["model_calls"] or not before:  # a resumed run adds what it paid; a fully cached rerun keeps it
        cost = {k: (round(v + before.get(k, 0), 1) if k != "cache_hits" else v) for k, v in cost.items()}
        cost_file.write_text(json.dumps({**cost, "when": time.strftime("%Y-%m-%d")}, indent=1) + "\n")
    return result


def _f(x: Any, fmt: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and x != x) else format(x, fmt)


def _row(name: str, b: dict[str, Any], n_tails: int, n_intents: int, seeds: str) -> str:
    ci = b.get("headline_ci95") or [None, None]
    return (f"| {name} | {seeds} | {b['n']} | {b['tail_intents_present']} of {n_tails} | "
            f"{b['intents_present']} of {n_intents} | {_f(b.get('headline'), '.3f')} "
            f"[{_f(ci[0], '.3f')}, {_f(ci[1], '.3f')}] | {_f(b.get('macro_recall'))} | {_f(b.get('tail_recall'))} | "
            f"{_f((b.get('quality') or {}).get('label_agreement'))} |")


def render(result: dict[str, Any], cost: dict[str, Any] | None) -> str:
    st, tails, intents = result["settings"], result["tails"], result["intents"]
    nt, ni = len(tails), len(intents)
    lines = [
        "# Who seeds the next round? A real round from `seeds`, the previous batch, or random real "
        "(eval/seeds_round.py)", "",
        f"{result['dataset']}, {ni} intents, tails {', '.join(tails)} (rare in the real round 0). Previous batch: "
        f"eval/generate.py's `recursive_replace` round {st['prev_round']} ({result['model']}), which already lost "
        f"both tails. Each seeder gives the next round the same number of seeds; the round is {st['calls']} calls "
        f"x {st['per_call']} messages at temperature {st['temperature']}, each call asking for the intent of a "
        "uniformly drawn seed and shown up to 3 seeds of it (generate.py's recursion step). `seeds` = "
        f"`tail_seeds(previous batch, reference=REAL, per_mode={st['per_mode']})`; REAL = {st['ref_per_intent']} "
        f"pool examples per intent; test = {st['test_per_intent']} held-out real examples per intent. Labels are "
        "the intent each call asked for; macro / tail recall are the downstream classifier's "
        "(eval/downstream.py) on the real test split; label agreement: share of the round a classifier trained "
        "on real data gives the asked-for intent.", "",
        "| batch | seeds (tail seeds, synthetic) | examples | tail intents present | intents present | "
        "headline score_normalized [95% CI] | macro recall | tail recall | label agreement |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        _row(f"previous batch (replace round {st['prev_round']})", result["previous_batch"], nt, ni, "-")]
    for rep in result["reps"]:
        for r in rep["rounds"]:
            name = f"next round from {r['seeder']}" + (f" (rep {rep['rep']})" if len(result["reps"]) > 1 else "")
            lines.append(_row(name, r, nt, ni, f"{r['n_seeds']} ({r['tail_seeds']}, {r['synthetic_seeds']})"))
    if len(result["reps"]) > 1:
        lines += ["", f"Mean over reps {st['reps']} (a rep draws its own previous-batch and random-real seeds and "
                  "its own call seeds; `seeds` is deterministic and emits the same seeds in every rep):",
                  "", "| next round from | tail intents present | intents present | headline | macro recall | "
                  "tail recall | label agreement |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for seeder in SEEDERS:
            rs = [r for rep in result["reps"] for r in rep["rounds"] if r["seeder"] == seeder]

            def mean(key: str, rs: list[dict[str, Any]] = rs) -> float:
                vals = [float(r[key]) for r in rs if r.get(key) is not None]
                return sum(vals) / len(vals) if vals else float("nan")

            agree = [r["quality"]["label_agreement"] for r in rs if r.get("quality")]
            lines.append(f"| {seeder} | {mean('tail_intents_present'):.1f} of {nt} | {mean('intents_present'):.1f} "
                         f"of {ni} | {mean('headline'):.3f} | {mean('macro_recall'):.2f} | {mean('tail_recall'):.2f} | "
                         f"{_f(sum(agree) / len(agree) if agree else None)} |")
    lines += ["", "What each round asked for (calls x 5, failed calls give nothing):", ""]
    for rep in result["reps"]:
        for r in rep["rounds"]:
            lines.append(f"- rep {rep['rep']}, {r['seeder']}: seeds {r['seed_intents']}; generated {r['asked']}")
    for rep in result["reps"]:
        s = rep["seeds_report"]
        lines.append(f"- rep {rep['rep']}, what `seeds` reported: {s['n_lacking']} of {s['n_modes']} shared modes "
                     f"lacking ({s['n_missing']} missing), {s['reference_share_lacking']:.0%} of REAL in them")
    if cost:
        lines += ["", f"Cold cost: {cost['model_calls']} model calls ({cost['failures']} failed), "
                  f"{cost['completion_tokens']} completion tokens, {cost['llm_s']} s of LLM time, {cost['wall_s']} s "
                  f"wall on a loaded 2-core CPU machine (niced, CI running alongside; {cost['when']}). A rerun reads "
                  "every answer from the cache."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A real next round seeded by seeds / previous batch / random real")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("eval/results"))
    parser.add_argument("--cache-dir", type=Path, default=D.DEFAULT_CACHE)
    parser.add_argument("--prev-round", type=int, default=1)
    parser.add_argument("--per-mode", type=int, default=3)
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--ref-per-intent", type=int, default=30)
    parser.add_argument("--test-per-intent", type=int, default=30)
    parser.add_argument("--reps", type=lambda s: [int(x) for x in s.split(",")], default=[0])
    parser.add_argument("--from-json", type=Path, default=None, help="render seeds_round.md from this JSON only")
    args = parser.parse_args(argv)
    if args.from_json is None:
        result = run(args)
        out = args.out
    else:
        result = json.loads(args.from_json.read_text())
        out = args.from_json.parent
    cost_file = out / "seeds_round_cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.exists() else None
    (out / "seeds_round.md").write_text(render(result, cost))
    print((out / "seeds_round.md").read_text())


if __name__ == "__main__":
    main()
