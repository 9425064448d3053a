"""Warm path: a fully cached `clusterdiv score` rerun against `clusterdiv metrics --metrics lexical`, side by side.

Makes a 1,000-example JSONL file from CLINC150 texts (seeded sample; Larson et al., 2019, CC BY 3.0),
points CLUSTERDIV_CACHE_DIR at a fresh temporary folder, runs `score` once to fill the cache (cold,
embeddings only: the default `text` representation makes no LLM call), then alternates the two warm
commands `--repeats` times as subprocesses and reports the median wall time of each, their ratio, the
score's own `timings` and which heavy modules the warm score imported (`-X importtime`).

    python eval/bench_warm.py [--data ../shared/data] [--n 1000] [--repeats 3] [--out eval/results/bench_warm]

Target (issue 15): warm score within 2x of lexical metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from clusterdiv.cli import main; sys.argv[0] = 'clusterdiv'; main()"  # as the console script
HEAVY = ("torch", "sentence_transformers", "litellm", "llama_cpp", "umap", "hdbscan", "numba", "sklearn", "scipy",
         "pandas")


def make_file(data: Path, n: int, folder: Path) -> Path:
    rows = [json.loads(line) for line in (data / "clinc150.jsonl").read_text(encoding="utf-8").splitlines() if line]
    random.Random(0).shuffle(rows)
    path = folder / f"clinc{n}.jsonl"
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows[:n]), encoding="utf-8")
    return path


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, proc.stdout, proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "bench_warm")
    args = ap.parse_args()
    exe = [sys.executable, "-c", CLI]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = make_file(args.data, args.n, folder)
        env = {**os.environ, "CLUSTERDIV_CACHE_DIR": str(folder / "cache")}
        score = [*exe, "score", str(path), "--format", "json", "--no-record"]
        lexical = [*exe, "metrics", str(path), "--metrics", "lexical"]
        cold_s, _, _ = run(score, env)
        walls: dict[str, list[float]] = {"score": [], "metrics_lexical": []}
        timings = None
        for _ in range(args.repeats):
            s, out, _ = run(score, env)
            walls["score"].append(s)
            timings = json.loads(out)["timings"]
            walls["metrics_lexical"].append(run(lexical, env)[0])
        _, _, imports = run([sys.executable, "-X", "importtime", "-c", CLI, *score[len(exe):]], env)
    loaded = {line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if line.startswith("import time:")}
    med = {k: round(statistics.median(v), 2) for k, v in walls.items()}
    result = {
        "n": args.n, "repeats": args.repeats, "cpus": os.cpu_count(), "cold_score_s": round(cold_s, 2),
        "warm_score_s": med["score"], "metrics_lexical_s": med["metrics_lexical"],
        "ratio": round(med["score"] / med["metrics_lexical"], 2), "walls": walls, "score_timings": timings,
        "heavy_imports_in_warm_score": sorted(m for m in HEAVY if m in loaded),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    t = timings or {}
    md = [
        "# Warm path (eval/bench_warm.py)", "",
        f"{args.n} CLINC150 texts, default `text` representation, fresh cache filled by one cold run "
        f"({result['cold_score_s']} s); median of {args.repeats} alternating runs, subprocesses, "
        f"{result['cpus']} CPU cores shared with other work.", "",
        "| command | wall s |", "| --- | --- |",
        f"| `clusterdiv score FILE --format json --no-record` (warm) | {result['warm_score_s']} |",
        f"| `clusterdiv metrics FILE --metrics lexical` | {result['metrics_lexical_s']} |",
        f"| ratio | {result['ratio']}x |", "",
        "Warm score's own timings: " + ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k.endswith("_s")) + ".",
        "", "Heavy modules the warm score imports: " + (", ".join(result["heavy_imports_in_warm_score"]) or "none")
        + " (sklearn/scipy are the clustering itself).",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
