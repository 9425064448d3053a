"""Benchmark compare's Vendi permutation test: the implementation before issue 32 against today's.

Run from the repository root: ``python -m eval.bench_compare_vendi --data ../shared/data``.

Issue 32 measured the test at 102 s of a 2-batch compare of 289 examples each (the rest of the
run 9.7 s) and 259 s for three batches. This replays those shapes on real text: 289-example batches
from CLINC150 (seeded; ``wide``: every banking intent, ``narrow``: 5 banking intents, ``travel``:
every travel intent), embedded with the bundled MiniLM in this process first, as compare does (so
torch's thread pool is loaded, as it is when compare reaches the test). Two comparisons: wide vs
narrow (one pair), then all three (three pairs); 1000 permutations, seed 0, compare's defaults.

Per pair, in this one process and on the same arrays, three runs in turn (their order alternates
from pair to pair so that a change in the machine's load does not favour one):

* ``before``: the implementation as it was, copied here verbatim (``before_vendi_permutation_p_value``);
* ``before, one BLAS thread``: the same code under ``threadpool_limits(1)``, to show how much of the
  gain is the threads rather than the code around them;
* ``now``: ``clusterdiv.metrics.semantic.vendi_permutation_p_value``.

The p-values must be equal (the same seeded splits, the same statistic; exit 1 otherwise), and the
speed-up of ``now`` over ``before`` at least 5x summed over the pairs (exit 1 otherwise). Writes
``eval/results/bench_compare_vendi.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path("eval/results")
BATCH = 289
PERMUTATIONS = 1000
TARGET = 5.0


# ------------------------------------------------- the implementation before issue 32, verbatim


def _before_vendi_of_masks(U: np.ndarray, G: np.ndarray | None, masks: np.ndarray) -> np.ndarray:
    from clusterdiv.metrics.semantic import _entropy_q

    size = int(masks[0].sum())
    if G is not None:
        index = np.stack([np.flatnonzero(m) for m in masks])
        kernels = G[index[:, :, None], index[:, None, :]] / size
    else:
        kernels = np.einsum("kn,nd,ne->kde", masks.astype(np.float64), U, U, optimize=True) / size
    return np.array([math.exp(_entropy_q(e, 1)) for e in np.linalg.eigvalsh(kernels)])


def before_vendi_permutation_p_value(A: np.ndarray, B: np.ndarray, *, permutations: int, seed: int,
                                     chunk: int = 32) -> tuple[float, float]:
    from clusterdiv.metrics.semantic import unit_rows, vendi_score

    UA, UB = unit_rows(A), unit_rows(B)
    if UA.shape[1] != UB.shape[1]:
        raise ValueError(f"embedding dimensions differ: {UA.shape[1]} and {UB.shape[1]}")
    na, nb = UA.shape[0], UB.shape[0]
    if na < 1 or nb < 1 or permutations < 1:
        raise ValueError("both batches need rows and permutations must be positive")
    U = np.vstack([UA, UB])
    n, d = U.shape
    G = U @ U.T if max(na, nb) <= d else None
    observed = vendi_score(UA) - vendi_score(UB)
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, permutations, chunk):
        k = min(chunk, permutations - start)
        masks = np.zeros((k, n), dtype=bool)
        for row in masks:
            row[rng.permutation(n)[:na]] = True
        diff = _before_vendi_of_masks(U, G, masks) - _before_vendi_of_masks(U, G, ~masks)
        extreme += int(np.sum(np.abs(diff) >= abs(observed) - 1e-9))
    return float(observed), (1 + extreme) / (1 + permutations)


# ------------------------------------------------------------------------------- inputs


def batches(data: Path, seed: int) -> dict[str, list[str]]:
    rows = [json.loads(line) for line in (data / "clinc150.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r.get("intent") != "oos" and r.get("domain")]
    rng = np.random.default_rng(seed)

    def draw(pool: list[dict[str, Any]]) -> list[str]:
        return [pool[i]["text"] for i in rng.choice(len(pool), size=BATCH, replace=False)]

    banking = [r for r in rows if r["domain"] == "banking"]
    five = sorted({r["intent"] for r in banking})[:5]
    return {"wide": draw(banking), "narrow": draw([r for r in banking if r["intent"] in five]),
            "travel": draw([r for r in rows if r["domain"] == "travel"])}


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--permutations", type=int, default=PERMUTATIONS)
    parser.add_argument("--from-json", action="store_true", help="re-render the markdown from the JSON")
    args = parser.parse_args(argv)
    if args.from_json:
        result = json.loads((RESULTS / "bench_compare_vendi.json").read_text())
        (RESULTS / "bench_compare_vendi.md").write_text(render(result))
        return 0

    from threadpoolctl import threadpool_info, threadpool_limits

    from clusterdiv.metrics.semantic import vendi_permutation_p_value
    from clusterdiv.modes.embed import Embedder

    texts = batches(args.data, args.seed)
    embedder = Embedder()
    (vectors, embed_s) = timed(lambda: {name: np.asarray(embedder.encode(t)) for name, t in texts.items()})
    comparisons = {"2 batches": [("wide", "narrow")],
                   "3 batches": [("wide", "narrow"), ("wide", "travel"), ("narrow", "travel")]}

    def before(a: str, b: str) -> tuple[float, float]:
        return before_vendi_permutation_p_value(vectors[a], vectors[b], permutations=args.permutations,
                                                seed=args.seed)

    def before_one_thread(a: str, b: str) -> tuple[float, float]:
        with threadpool_limits(1, user_api="blas"):
            return before(a, b)

    def now(a: str, b: str) -> tuple[float, float]:
        return vendi_permutation_p_value(vectors[a], vectors[b], permutations=args.permutations, seed=args.seed)

    runs = {"before": before, "before, one BLAS thread": before_one_thread, "now": now}
    load = [os.getloadavg()[0]]
    rows: list[dict[str, Any]] = []
    turn = 0
    for comparison, pairs in comparisons.items():
        for a, b in pairs:
            order = list(runs) if turn % 2 == 0 else list(reversed(runs))
            turn += 1
            row: dict[str, Any] = {"comparison": comparison, "pair": f"{a} vs {b}"}
            for name in order:
                (difference, p), seconds = timed(lambda f=runs[name], a=a, b=b: f(a, b))
                row[name] = {"seconds": seconds, "difference": difference, "p_value": p}
                print(f"{comparison} {a} vs {b} {name}: {seconds:.1f} s, p {p:.4f}", file=sys.stderr, flush=True)
            load.append(os.getloadavg()[0])
            row["p_equal"] = row["before"]["p_value"] == row["now"]["p_value"] == row[
                "before, one BLAS thread"]["p_value"]
            row["difference_gap"] = abs(row["before"]["difference"] - row["now"]["difference"])
            rows.append(row)
    totals = {c: {name: sum(r[name]["seconds"] for r in rows if r["comparison"] == c) for name in runs}
              for c in comparisons}
    result = {
        "batch_size": BATCH, "permutations": args.permutations, "seed": args.seed, "embed_s": embed_s,
        "dimension": int(next(iter(vectors.values())).shape[1]),
        "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                    "load_1min": load, "python": platform.python_version(), "numpy": np.__version__,
                    "blas": [{k: i.get(k) for k in ("internal_api", "version", "num_threads")}
                             for i in threadpool_info()],
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "pairs": rows, "totals": totals,
        "speedup": {c: t["before"] / t["now"] for c, t in totals.items()},
        "speedup_one_thread_before": {c: t["before, one BLAS thread"] / t["now"] for c, t in totals.items()},
        "p_values_equal": all(r["p_equal"] for r in rows),
        "max_difference_gap": max(r["difference_gap"] for r in rows),
        "target": TARGET,
    }
    result["passed"] = result["p_values_equal"] and min(result["speedup"].values()) >= TARGET
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_compare_vendi.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "bench_compare_vendi.md").write_text(render(result))
    print(render(result))
    return 0 if result["passed"] else 1


def render(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        "# compare's Vendi permutation test, before and now (`python -m eval.bench_compare_vendi`)", "",
        f"{result['batch_size']}-example CLINC150 batches embedded with the bundled MiniLM (d = {result['dimension']}, "
        f"{result['embed_s']:.1f} s for all three, in this process), {result['permutations']} permutations, seed "
        f"{result['seed']}; one process, the same arrays, the three runs of a pair one after the other. Machine: "
        f"{machine['affinity']} CPUs, 1-min load average {min(machine['load_1min']):.1f}-"
        f"{max(machine['load_1min']):.1f} while it ran.", "",
        "| comparison | pair | before | before, one BLAS thread | now | before / now | p before | p now |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["pairs"]:
        lines.append(f"| {r['comparison']} | {r['pair']} | {r['before']['seconds']:.1f} s | "
                     f"{r['before, one BLAS thread']['seconds']:.1f} s | {r['now']['seconds']:.1f} s | "
                     f"{r['before']['seconds'] / r['now']['seconds']:.1f}x | {r['before']['p_value']:.4f} | "
                     f"{r['now']['p_value']:.4f} |")
    lines += ["", "| comparison | before | before, one BLAS thread | now | speed-up (before / now) |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for c, t in result["totals"].items():
        lines.append(f"| {c} | {t['before']:.1f} s | {t['before, one BLAS thread']:.1f} s | {t['now']:.1f} s | "
                     f"**{result['speedup'][c]:.1f}x** |")
    lines += ["", f"p-values equal in every pair: {'yes' if result['p_values_equal'] else 'NO'}; largest gap between "
              f"the observed differences: {result['max_difference_gap']:.1e}. Target: at least "
              f"{result['target']:.0f}x at equal p-values: {'met' if result['passed'] else 'MISSED'}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
