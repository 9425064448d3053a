"""Lexical metrics at 100k / 300k / 1M texts: wall time and peak memory of `clusterdiv metrics --metrics lexical`.

Issue 15 asks for lexical metrics over 1,000,000 texts in bounded memory. The texts are realistic
rather than random: each is the first half of one CLINC150 utterance joined to the second half of
another (seeded), so vocabulary and n-gram repetition grow the way a large synthetic batch's do.
Each size runs as its own subprocess of the real CLI (JSONL input), and its peak RSS is read from
`resource.getrusage(RUSAGE_CHILDREN)` after it exits, so the figure is the command's own.

    python eval/bench_lexical_scale.py [--data ../shared/data] [--sizes 100000 300000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "eval" / "results" / "bench_lexical_scale"
CLI = "import sys; from clusterdiv.cli import main; sys.argv[0] = 'clusterdiv'; main()"


def write_texts(data: Path, n: int, path: Path, seed: int = 0) -> None:
    texts = [json.loads(line)["text"] for line in (data / "clinc150.jsonl").read_text(encoding="utf-8").splitlines()
             if line]
    halves = [(t.split()[: max(1, len(t.split()) // 2)], t.split()[max(1, len(t.split()) // 2):]) for t in texts]
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            a, b = rng.choice(halves)[0], rng.choice(halves)[1]
            fh.write(json.dumps({"id": f"t{i}", "text": " ".join(a + b)}) + "\n")


def run_one(path: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CLI, "metrics", str(path), "--metrics", "lexical", "--format", "json"],
                          capture_output=True, text=True, check=True, env={**os.environ})
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over children so far
    payload = json.loads(proc.stdout)
    return {"wall_s": wall, "peak_rss_mb": peak_kb / 1024, "peak_is_new": peak_kb > before,
            "n_samples": payload["n_samples"],
            "metrics": {k: v["value"] for k, v in payload["metrics"].items()}}


def render(res: dict) -> str:
    lines = ["### Lexical metrics at scale (`clusterdiv metrics FILE --metrics lexical`)", "",
             "Recombined CLINC150 half-utterances, JSONL, one CLI subprocess per size; peak RSS of the "
             "subprocess (getrusage).", "",
             "| texts | wall s | peak RSS MB | MB per 100k texts | distinct_2 | self_bleu | compression |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in res["runs"]:
        m = r["metrics"]
        lines.append(f"| {r['n']:,} | {r['wall_s']:.1f} | {r['peak_rss_mb']:,.0f} | "
                     f"{r['peak_rss_mb'] / (r['n'] / 100_000):,.0f} | {m.get('distinct_2', float('nan')):.4f} | "
                     f"{m.get('self_bleu', float('nan')):.4f} | {m.get('compression_ratio', float('nan')):.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--from-json", action="store_true")
    args = ap.parse_args()
    if not args.from_json:
        runs = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in sorted(args.sizes):  # ascending, so each child's peak is read as the new maximum
                path = Path(tmp) / f"texts{n}.jsonl"
                write_texts(args.data, n, path)
                runs.append({"n": n, **run_one(path)})
                path.unlink()
                print(runs[-1], flush=True)
        OUT.with_suffix(".json").write_text(json.dumps({"runs": runs}, indent=1), encoding="utf-8")
    res = json.loads(OUT.with_suffix(".json").read_text(encoding="utf-8"))
    OUT.with_suffix(".md").write_text(render(res), encoding="utf-8")
    print(render(res))


if __name__ == "__main__":
    main()
