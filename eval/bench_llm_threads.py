"""Local-model runs side by side: every process taking every core against each taking its share.

llama.cpp's threads spin while they wait for each other, so on a machine running several clusterdiv
processes at once (Ray actors, pytest-xdist workers, two users' jobs) a thread count of "all the
cores" in each is oversubscription. This runs P processes at once, each extracting the same n
built-in demo texts on its own fresh cache with the bundled SmolLM2, under two settings of
OMP_NUM_THREADS (which the local provider reads, see `clusterdiv.llm.local.default_threads`):

- `every core`: OMP_NUM_THREADS = the CPUs available, in every process (the old default);
- `share`: OMP_NUM_THREADS = CPUs // P (what Ray gives an actor and tests/conftest.py an xdist worker).

Every process loads the model and answers one warm-up text, then all start timing together (a file
barrier), so the timed parts overlap. Ratios are against one process alone with every core, run in
the same invocation. Answers are compared across all runs (they must not depend on threads).

    python -m eval.bench_llm_threads --n 16 --processes 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clusterdiv.llm.local import available_cpus

RESULTS = Path(__file__).parent / "results"


def child(n: int, barrier: Path, out: Path) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import clusterdiv.io.demo
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.core.prompts import PromptTemplate
    from clusterdiv.llm.structured import LLMSettings
    from clusterdiv.modes.extract import extract_criteria

    texts = clusterdiv.io.demo.load("real")[: n + 1]
    llm, prompt = LLMSettings(model="local/smollm2", seed=0), PromptTemplate.load()
    with ModelCache(Path(tempfile.mkdtemp(prefix="bench-threads-"))) as cache:
        extract_criteria(texts[:1], model=llm, cache=cache, prompt=prompt)  # load + warm-up
        out.with_suffix(".ready").touch()
        while not barrier.exists():
            time.sleep(0.01)
        started = time.perf_counter()
        answers = extract_criteria(texts[1:], model=llm, cache=cache, prompt=prompt)
        seconds = time.perf_counter() - started
    out.write_text(json.dumps({"seconds": seconds, "n": n, "answers": [a.criteria for a in answers]}))


def run_at_once(processes: int, threads: int, n: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        barrier = tmp_path / "go"
        outs = [tmp_path / f"p{k}.json" for k in range(processes)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        procs = [subprocess.Popen([sys.executable, "-m", "eval.bench_llm_threads", "--child", str(out),
                                   "--barrier", str(barrier), "--n", str(n)], env=env) for out in outs]
        while not all(o.with_suffix(".ready").exists() for o in outs):
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("a benchmark process failed")
            time.sleep(0.05)
        barrier.touch()
        for p in procs:
            if p.wait() != 0:
                raise SystemExit("a benchmark process failed")
        return [json.loads(o.read_text()) for o in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="timed texts per process (at most 47)")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.n, args.barrier, args.child)
        return

    total = available_cpus()
    rows, answers = [], []
    settings = [(1, "every core", total)]
    for p in args.processes:
        if p > 1:
            settings += [(p, "every core", total), (p, "share", max(1, total // p))]
    for processes, policy, threads in settings:
        results = run_at_once(processes, threads, args.n)
        answers += [r["answers"] for r in results]
        per_example = [r["seconds"] / r["n"] for r in results]
        wall = max(r["seconds"] for r in results)
        rows.append({"processes": processes, "policy": policy, "threads_each": threads,
                     "s_per_example_each": round(sum(per_example) / len(per_example), 3),
                     "examples_per_s_total": round(processes * args.n / wall, 3)})
        print(rows[-1], flush=True)
    alone = rows[0]
    for r in rows:
        r["slowdown_each_vs_alone"] = round(r["s_per_example_each"] / alone["s_per_example_each"], 2)
        r["throughput_vs_alone"] = round(r["examples_per_s_total"] / alone["examples_per_s_total"], 2)
    result = {"command": "python -m eval.bench_llm_threads " + " ".join(sys.argv[1:]), "cpus": total,
              "n": args.n, "load_average_end": [round(x, 2) for x in os.getloadavg()],
              "same_answers_everywhere": all(a == answers[0] for a in answers), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_llm_threads.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "bench_llm_threads.md").write_text(render(result))
    print(render(result))


def render(result: dict) -> str:
    lines = ["# Local-model processes side by side (eval/bench_llm_threads.py)", "",
             f"`{result['command']}`: {result['cpus']} CPUs, {result['n']} timed built-in demo texts per process "
             f"on fresh caches, bundled SmolLM2-135M; load average at the end {result['load_average_end']}.", "",
             "| processes | OMP_NUM_THREADS | threads each | s / example, each | examples / s, all | "
             "each, vs alone | throughput vs alone |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        lines.append(f"| {r['processes']} | {r['policy']} | {r['threads_each']} | {r['s_per_example_each']} | "
                     f"{r['examples_per_s_total']} | {r['slowdown_each_vs_alone']}x | {r['throughput_vs_alone']}x |")
    lines += ["", f"Same answers in every process and setting: {result['same_answers_everywhere']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
