"""Cold versus warm `clusterdiv score` on 1,000 real examples, end to end through the CLI.

Both runs happen in this one process, one after the other, against a fresh cache directory, so the
ratio compares like with like on a shared, noisy machine. The second run must make zero model
calls and produce the same report (apart from its own `timings`).

    python -m eval.bench_cache --data ../shared/data --n 1000
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def build_sample(data_dir: Path, dataset: str, n: int, seed: int, out: Path) -> Path:
    rows = [json.loads(line) for line in (data_dir / f"{dataset}.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r.get("intent") not in (None, "oos")]
    random.Random(seed).shuffle(rows)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows[:n]), encoding="utf-8")
    return out


def run_score(path: Path, cache_dir: Path, extra: list[str]) -> tuple[float, dict, str]:
    cmd = [sys.executable, "-m", "clusterdiv.cli", "score", str(path), "--format", "json",
           "--cache-dir", str(cache_dir), "--id-field", "id", "--label-field", "intent", *extra]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"clusterdiv failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout), done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--dataset", default="clinc150")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="local/smollm2")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        sample = build_sample(args.data, args.dataset, args.n, args.seed, tmp_path / f"{args.dataset}_{args.n}.jsonl")
        extra = ["--model", args.model]
        cold_s, cold, _ = run_score(sample, tmp_path / "cache", extra)
        warm_s, warm, _ = run_score(sample, tmp_path / "cache", extra)

    cold_t, warm_t = cold.pop("timings"), warm.pop("timings")
    identical = json.dumps(cold, sort_keys=True) == json.dumps(warm, sort_keys=True)
    result = {
        "dataset": args.dataset,
        "n": args.n,
        "model": args.model,
        "cold_wall_s": round(cold_s, 2),
        "warm_wall_s": round(warm_s, 2),
        "speedup": round(cold_s / warm_s, 1),
        "cold_llm_calls": cold_t["llm_calls"],
        "warm_llm_calls": warm_t["llm_calls"],
        "warm_llm_cache_hits": warm_t["llm_cache_hits"],
        "warm_embedding_calls": warm_t["embedding_calls"],
        "cold_stage_s": {k: round(v, 2) for k, v in cold_t.items() if k.endswith("_s")},
        "warm_stage_s": {k: round(v, 2) for k, v in warm_t.items() if k.endswith("_s")},
        "identical_report_except_timings": identical,
        "score": cold["score"],
        "score_normalized": cold["score_normalized"],
        "n_clusters": cold["n_clusters"],
        "n_noise": cold["n_noise"],
        "failed": cold["failed"]["count"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_cache.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = identical and result["warm_llm_calls"] == 0 and result["speedup"] >= 20
    print("PASS" if ok else "FAIL: needs identical report, zero warm calls and >= 20x")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
