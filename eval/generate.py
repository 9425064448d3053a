"""Real generators: synthetic intent batches from an LLM, and what every metric says about them.

    python -m eval.generate --data ../shared/data --out eval/results/
    python -m eval.generate --data ../shared/data --regimes replace,accumulate --recursion-calls 24 \
        --round0-head 20 --round0-tail 4 --name generate_rounds      # the recursion at 120 asked a round
    python -m eval.generate --data ../shared/data --rescore --name generate   # re-score saved batches, no LLM
    python -m eval.downstream --from-json eval/results/downstream.json   # renders DOWNSTREAM.md

A real LLM (the embedded SmolLM2-135M by default, through clusterdiv's litellm layer with
JSON-schema-constrained output; any litellm model string works the same) writes new user messages
for named intents of one real dataset, shown real examples of the intent. Labels are the intent
each call asked for. Regimes a practitioner would use:

* `template_t0.2`: one fixed prompt per intent (same seed examples every call), temperature 0.2;
* `template_t1.0`: the same template at temperature 1.0 (a second generator setting);
* `personas_t1.0`: rotated personas, styles and scenarios, fresh seed examples per call, temperature 1.0;
* recursion over `--rounds` rounds from a real round 0 whose named tail intents are rare:
  `replace` (round N is seeded only from round N-1's output: each call picks a parent example of
  round N-1 uniformly, asks for the parent's intent, and shows examples of that intent from round
  N-1) versus `accumulate` (the same, drawing from real round 0 plus every earlier round).

Every batch is scored with the default headline (with its 95% interval), every baseline, the
downstream classifier (eval/downstream.py, trained on the batch, tested on the real held-out split of
the chosen intents), k-NN precision and coverage against that real split (a weak generator's off-intent
text is diverse too: the reference-free headline cannot tell it from new modes), and two per-example
quality checks: a fluency filter (length, letters, not a copy
of a shown example) and label agreement (does a classifier trained on real data give the example the
intent it was asked for?). Every answer is cached under model + prompt + settings + seed + input, so a
rerun is free and writes the same JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from eval import downstream as D

PER_CALL = 5
SYSTEM = ("You write realistic messages that a bank's customers send to a chat assistant. "
          "Reply with JSON only.")
PERSONAS = (
    "a busy parent typing quickly on a phone, terse and lowercase",
    "an elderly customer who is very polite and formal",
    "a teenager who uses slang and abbreviations",
    "a non-native English speaker with simple grammar",
    "an annoyed customer who is in a hurry",
    "a small business owner asking on behalf of the company",
    "someone travelling abroad late at night",
    "a student on a tight budget",
)


class Utterances(BaseModel):
    """The answer schema: exactly PER_CALL short user messages."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    utterances: list[Annotated[str, StringConstraints(min_length=3, max_length=90)]] = Field(
        min_length=PER_CALL, max_length=PER_CALL)


class GenPrompt:
    """What clusterdiv's structured-output layer needs of a prompt: a content hash and messages."""

    TEMPLATE = ("Intent: {intent}\nExamples of real messages with this intent:\n<<<\n{examples}\n>>>\n"
                "{persona}Write {k} new, different messages with the same intent. "
                "Return {{\"utterances\": [...]}} with exactly {k} strings.")

    def __init__(self) -> None:
        self.content_hash = hashlib.sha256((SYSTEM + self.TEMPLATE).encode()).hexdigest()

    def messages(self, *, intent: str, examples: list[str], persona: str = "", **_: Any) -> list[dict[str, str]]:
        who = f"Write them as {persona}.\n" if persona else ""
        user = self.TEMPLATE.format(intent=intent.replace("_", " "), examples="\n".join(examples),
                                    persona=who, k=PER_CALL)
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def call_seed(*parts: Any) -> int:
    """A seed derived from the call's identity (regime, round, call index): stable across runs."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8], 16)


def clean(u: str) -> str:
    return re.sub(r"\s+", " ", u).strip().strip('"').strip()


class Generator:
    """Asks the model for PER_CALL messages of one intent; every answer cached, failures counted."""

    def __init__(self, *, model: str, cache: Any, max_tokens: int = 260, log=None):
        from clusterdiv.llm.structured import CallStats

        self.model = model
        self.cache = cache
        self.max_tokens = max_tokens
        self.prompt = GenPrompt()
        self.log = log
        self.stats = CallStats()
        self.seconds = 0.0
        self.loop = asyncio.new_event_loop()  # one loop for every call (litellm keeps per-loop state)

    def ask(self, intent: str, examples: list[str], *, temperature: float, seed: int, persona: str = "") -> list[str]:
        from clusterdiv.llm.structured import LLMSettings, agenerate_structured

        settings = LLMSettings(model=self.model, temperature=temperature, seed=seed, max_tokens=self.max_tokens,
                               max_input_chars=4000, max_attempts=2)  # one re-ask: a 135M model's bad JSON is costly
        variables = {"intent": intent, "examples": list(examples), "persona": persona}
        t0 = time.perf_counter()
        outcome = self.loop.run_until_complete(agenerate_structured(self.prompt, variables, Utterances, model=settings,
                                                                 cache=self.cache, stats=self.stats))
        self.seconds += time.perf_counter() - t0
        if outcome.cached is False and self.log:
            self.log(f"{intent}: {'ok' if outcome.ok else 'failed'} in {time.perf_counter() - t0:.1f} s "
                     f"({self.stats.calls} calls, {self.stats.cache_hits} cached)")
        if not outcome.ok:
            return []
        return [c for u in outcome.value["utterances"] if (c := clean(u))]


# ---------------------------------------------------------------- regimes


def one_shot_regime(gen: Generator, pool: dict[str, list[str]], intents: Sequence[str], *, name: str,
                    temperature: float, calls_per_intent: int, personas: bool, seed: int = 0) -> dict[str, Any]:
    rows: list[tuple[str, str]] = []
    for intent in intents:
        for j in range(calls_per_intent):
            if personas:  # fresh seed examples and a rotated persona per call
                rng = random.Random(call_seed(name, intent, j, seed))
                shown = rng.sample(pool[intent], 3)
                persona = PERSONAS[(j + list(intents).index(intent)) % len(PERSONAS)]
            else:  # the fixed template: the same three examples every call
                shown, persona = pool[intent][:3], ""
            for u in gen.ask(intent, shown, temperature=temperature, seed=call_seed(name, intent, j, seed),
                             persona=persona):
                rows.append((u, intent))
    return {"regime": name, "round": None, "rows": rows}


def recursion(gen: Generator, round0: list[tuple[str, str]], *, regime: str, rounds: int, calls: int,
              temperature: float, seed: int = 0) -> list[dict[str, Any]]:
    """Round N from round N-1 only (replace) or from round 0 plus every earlier round (accumulate)."""
    out = [{"regime": f"recursive_{regime}", "round": 0, "rows": list(round0)}]
    history = [list(round0)]
    for r in range(1, rounds + 1):
        source = history[-1] if regime == "replace" else [x for h in history for x in h]
        if not source:  # every call of the previous round failed: nothing left to seed from
            break
        by_intent: dict[str, list[str]] = {}
        for text, intent in source:
            by_intent.setdefault(intent, []).append(text)
        rng = random.Random(call_seed("recursion", regime, r, seed))
        rows: list[tuple[str, str]] = []
        for j in range(calls):
            _, intent = rng.choice(source)  # a parent example, uniformly: frequent intents are asked for more
            candidates = sorted(set(by_intent[intent]))
            shown = rng.sample(candidates, min(3, len(candidates)))
            for u in gen.ask(intent, shown, temperature=temperature, seed=call_seed(regime, r, j, seed)):
                rows.append((u, intent))
        history.append(rows)
        out.append({"regime": f"recursive_{regime}", "round": r, "rows": rows})
        if regime == "accumulate":  # what a practitioner trains on under accumulate: everything so far
            out.append({"regime": "accumulated_pool", "round": r, "rows": [x for h in history for x in h]})
    return out


# ---------------------------------------------------------------- scoring a batch

_WORDS = re.compile(r"[A-Za-z']+")


def fluent(text: str) -> bool:
    """The cheap per-example filter: 3-40 words, mostly letters."""
    words = _WORDS.findall(text)
    letters = sum(c.isalpha() or c.isspace() for c in text) / max(1, len(text))
    return 3 <= len(words) <= 40 and letters >= 0.8


def score_batch(rows: list[tuple[str, str]], *, test: list[tuple[str, str]], tails: set[str], intents: Sequence[str],
                real_clf: Any, real_texts: set[str], cache: Any, seed: int = 0) -> dict[str, Any]:
    from clusterdiv.metrics.builtins import KNN_K
    from clusterdiv.modes.scoring import score_labels
    from eval.representations import GRID, ViewVectors, cut_scores, view_distances

    texts = [t for t, _ in rows]
    labels = [i for _, i in rows]
    counts = Counter(labels)
    out: dict[str, Any] = {"n": len(rows), "unique": len(set(texts)),
                           "intents_present": sum(1 for i in intents if counts.get(i)),
                           "tail_examples": {t: counts.get(t, 0) for t in sorted(tails)},
                           "tail_intents_present": sum(1 for t in tails if counts.get(t))}
    if len(rows) < 2:
        return out
    allt = sorted(set(texts) | {t for t, _ in test})
    vectors = dict(zip(allt, D.embed(allt, cache=cache), strict=True))
    out.update(D.downstream_utility(texts, labels, [t for t, _ in test], [i for _, i in test], tail_labels=tails,
                                    seed=seed, vectors=vectors))
    condensed, kept, _ = view_distances(texts, "text", ViewVectors(text=vectors, criteria={}, degenerate={}))
    _, labs = cut_scores(condensed, len(kept), reference_size=100)
    s = score_labels(np.asarray(labs[GRID.index(0.65)]).tolist(), reference_size=100, seed=seed)
    out.update(headline=round(s.score_normalized, 6), headline_ci95=[round(x, 6) for x in s.ci95_normalized],
               n_modes=s.n_modes)
    out.update({k: (None if v is None else round(float(v), 6)) for k, v in D.set_metrics(texts, vectors).items()})
    X = np.vstack([vectors[t] for t in texts]).astype(np.float64)
    if len(texts) > KNN_K:  # fidelity and coverage against the real held-out split: junk is diverse too
        out["vs_real"] = vs_real(texts, [t for t, _ in test], cache=cache, seed=seed)
    agree = real_clf.predict(X) == np.asarray(labels, dtype=object)
    shown = {t.lower() for t in real_texts}
    out["quality"] = {"fluent_pass": round(float(np.mean([fluent(t) for t in texts])), 4),
                      "label_agreement": round(float(agree.mean()), 4),
                      "copied_real": round(float(np.mean([t.lower() in shown for t in texts])), 4),
                      "both_pass": round(float(np.mean([fluent(t) and bool(a) for t, a in zip(texts, agree,
                                                                                                 strict=True)])), 4)}
    return out


def vs_real(texts: list[str], real: list[str], *, cache: Any, seed: int = 0) -> dict[str, Any]:
    """What `clusterdiv score BATCH --reference REAL` says: k-NN precision, recall, density and coverage,
    MAUVE, and the modes of batch and real data clustered together - how many real modes the batch
    holds and how much of the batch sits in modes real data lacks (the headline's modes, anchored)."""
    from clusterdiv import score

    report = score(texts, reference=real, metrics="reference", cache=cache, seed=seed, bootstrap=0)
    out = {k: (None if (v := report.metrics[k]["value"]) is None else round(float(v), 4))
           for k in ("precision", "recall", "density", "coverage", "mauve")}
    shares = report.cluster_shares
    real_modes = [c for c in shares.clusters if c.reference_count]
    return {**out, "real_modes": len(real_modes), "real_modes_held": sum(1 for c in real_modes if c.batch_count),
            "batch_off_real": round(sum(c.batch_count for c in shares.clusters if not c.reference_count)
                                    / max(1, shares.n_batch), 4)}


def score_all(batches: list[dict[str, Any]], *, pool: dict[str, list[str]], test: list[tuple[str, str]],
              intents: Sequence[str], tails: Sequence[str], cache: Any, seed: int = 0) -> list[dict[str, Any]]:
    """Every batch scored; `batches` hold `rows` of (text, asked-for intent). No model call: embeddings only."""
    from sklearn.linear_model import LogisticRegression

    # the per-example label check: a classifier trained on every real pool example of the intents
    real_rows = [(t, i) for i in intents for t in pool[i]]
    clf = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    clf.fit(D.embed([t for t, _ in real_rows], cache=cache).astype(np.float64), [i for _, i in real_rows])
    real_texts = {t for t, _ in real_rows}
    return [{"regime": b["regime"], "round": b["round"],
             **score_batch([tuple(r) for r in b["rows"]], test=test, tails=set(tails), intents=intents,
                           real_clf=clf, real_texts=real_texts, cache=cache, seed=seed),
             "examples": [list(r) for r in b["rows"]]} for b in batches]


def tiny_config() -> dict[str, Any]:
    return {"intents": 4, "tails": 1, "calls_per_intent": 1, "rounds": 2, "recursion_calls": 3,
            "round0_head": 4, "round0_tail": 1}


def run(*, pool: dict[str, list[str]], test: list[tuple[str, str]], intents: Sequence[str], tails: Sequence[str],
        model: str, cache: Any, rounds: int = 4, calls_per_intent: int = 2, recursion_calls: int = 8,
        round0_head: int = 10, round0_tail: int = 3, recursion_temperature: float = 0.7, seed: int = 0,
        regimes: Sequence[str] = ("template_t0.2", "template_t1.0", "personas_t1.0", "replace", "accumulate"),
        log=None) -> dict[str, Any]:
    """Generate every regime's batches and score them. `pool`: intent -> real examples (seed side)."""
    gen = Generator(model=model, cache=cache, log=log)
    started = time.perf_counter()
    batches: list[dict[str, Any]] = []
    n_real = len(intents) * calls_per_intent * PER_CALL // len(intents)
    batches.append({"regime": "real", "round": None,
                    "rows": [(t, i) for i in intents for t in pool[i][:n_real]]})
    round0 = [(t, i) for i in intents for t in pool[i][:(round0_tail if i in tails else round0_head)]]
    for regime in ("replace", "accumulate"):
        if regime in regimes:
            batches += recursion(gen, round0, regime=regime, rounds=rounds, calls=recursion_calls,
                                 temperature=recursion_temperature, seed=seed)
            if log:
                log(f"recursive_{regime}: {gen.stats.calls} calls so far")
    for name, temperature, personas in (("template_t0.2", 0.2, False), ("template_t1.0", 1.0, False),
                                        ("personas_t1.0", 1.0, True)):
        if name in regimes:
            batches.append(one_shot_regime(gen, pool, intents, name=name, temperature=temperature,
                                           calls_per_intent=calls_per_intent, personas=personas, seed=seed))
            if log:
                log(f"{name}: {len(batches[-1]['rows'])} examples, {gen.stats.calls} calls so far")
    gen_cost = {"model_calls": gen.stats.calls, "cache_hits": gen.stats.cache_hits, "failures": gen.stats.failures,
                "completion_tokens": gen.stats.completion_tokens, "llm_s": round(gen.seconds, 1)}
    scored = score_all(batches, pool=pool, test=test, intents=intents, tails=tails, cache=cache, seed=seed)
    return {"intents": list(intents), "tails": list(tails), "model": model, "per_call": PER_CALL,
            "settings": {"rounds": rounds, "calls_per_intent": calls_per_intent, "recursion_calls": recursion_calls,
                         "round0_head": round0_head, "round0_tail": round0_tail,
                         "recursion_temperature": recursion_temperature, "seed": seed, "regimes": list(regimes)},
            "batches": scored, "cost": {**gen_cost, "wall_s": round(time.perf_counter() - started, 1)}}


def main(argv: list[str] | None = None) -> None:
    from clusterdiv.core.cache import ModelCache
    from eval.corpora import SUBSET_FIELD, load_dataset

    parser = argparse.ArgumentParser(description="Synthetic batches from a real LLM, scored by every metric")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--dataset", default="clinc150:banking")
    parser.add_argument("--intents", type=int, default=6)
    parser.add_argument("--tails", type=int, default=2)
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls-per-intent", type=int, default=2)
    parser.add_argument("--recursion-calls", type=int, default=8)
    parser.add_argument("--round0-head", type=int, default=10, help="real round 0: examples per head intent")
    parser.add_argument("--round0-tail", type=int, default=3, help="real round 0: examples per tail intent")
    parser.add_argument("--test-per-intent", type=int, default=30)
    parser.add_argument("--temperature", type=float, default=0.7, help="the recursion's sampling temperature")
    parser.add_argument("--seed", type=int, default=0, help="varies every call's seed and the recursion's sampling")
    parser.add_argument("--regimes", default="replace,accumulate,template_t0.2,personas_t1.0,template_t1.0")
    parser.add_argument("--cache-dir", type=Path, default=D.DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=Path("eval/results"))
    parser.add_argument("--name", default="generate", help="writes <out>/<name>.json")
    parser.add_argument("--rescore", action="store_true",
                        help="re-score the batches saved in <out>/<name>.json (no model call; its settings win)")
    args = parser.parse_args(argv)
    saved = json.loads((args.out / f"{args.name}.json").read_text()) if args.rescore else None
    if saved:  # the saved run's dataset and intents, not this command line's
        args.dataset = saved["dataset"]
    base, _, subset = args.dataset.partition(":")
    ds = load_dataset(args.data / f"{base}.jsonl", heldout_per_intent=args.test_per_intent,
                      subset=subset or None, subset_field=SUBSET_FIELD.get(base) if subset else None, name=args.dataset)
    order = list(ds.intents)
    random.Random(0).shuffle(order)
    intents = saved["intents"] if saved else sorted(order[: args.intents])
    tails = saved["tails"] if saved else (intents[-args.tails:] if args.tails else [])
    pool = {i: [r.text for r in ds.pool[i]] for i in intents}
    test = [(r.text, r.intent) for r in ds.heldout if r.intent in set(intents)]

    def log(msg: str) -> None:
        print(f"  [generate] {msg}", file=sys.stderr, flush=True)

    if saved:
        batches = [{"regime": b["regime"], "round": b["round"], "rows": b["examples"]} for b in saved["batches"]]
        result = {**saved, "batches": score_all(batches, pool=pool, test=test, intents=intents, tails=tails,
                                                cache=ModelCache(args.cache_dir), seed=saved["settings"]["seed"]),
                  "cost": {"model_calls": 0}}
    else:
        result = run(pool=pool, test=test, intents=intents, tails=tails, model=args.model,
                     cache=ModelCache(args.cache_dir), rounds=args.rounds, calls_per_intent=args.calls_per_intent,
                     recursion_calls=args.recursion_calls, round0_head=args.round0_head,
                     round0_tail=args.round0_tail, regimes=args.regimes.split(","), seed=args.seed,
                     recursion_temperature=args.temperature, log=log)
        result["dataset"] = args.dataset
        result["command"] = " ".join(["python -m eval.generate", *(argv if argv is not None else sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    cost = result.pop("cost")
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    # the run's cost varies (cache state, machine load): kept apart so the results JSON is deterministic
    cost_file = args.out / f"{args.name}_cost.json"
    previous = json.loads(cost_file.read_text()) if cost_file.exists() else {}
    if cost["model_calls"] or not previous:  # a resumed run adds what it paid to the earlier runs' cost
        summed = {k: round(v + previous.get(k, 0), 1) if k != "cache_hits" else v for k, v in cost.items()}
        cost_file.write_text(json.dumps({**summed, "when": time.strftime("%Y-%m-%d")}, indent=1))
    for b in result["batches"]:
        log(f"{b['regime']:<22} {b['round']!s:>4} n={b['n']:>3} head={b.get('headline')} "
            f"acc={b.get('accuracy')} tail={b['tail_examples']} q={b.get('quality')}")


if __name__ == "__main__":
    main()
