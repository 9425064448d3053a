"""Lexical metrics at 10k / 100k / 1M texts: wall time and peak memory of `clusterdiv metrics --metrics lexical`.

Issue 15 asks for lexical metrics over 1,000,000 texts in bounded memory. The texts are realistic
rather than random: each is the first half of one CLINC150 utterance joined to the second half of
another (seeded), so vocabulary and n-gram repetition grow the way a large synthetic batch's do.
Each size runs as its own subprocess of the real CLI (JSONL input, streamed in chunks), and its
peak RSS is that child's own `ru_maxrss` from `os.wait4`. The smallest size is also computed in
memory in this process (`compute_set_metrics` on all texts) and the values compared, so the
streamed path is checked against the in-memory one in the same run.

    python eval/bench_lexical_scale.py [--data ../shared/data] [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


def run_one(path: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    with out.open("wb") as stdout:
        proc = subprocess.Popen([sys.executable, "-c", CLI, "metrics", str(path), "--metrics", "lexical",
                                 "--format", "json"], stdout=stdout, env={**os.environ})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the max over all children
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"clusterdiv metrics failed with exit code {proc.returncode}")
    payload = json.loads(out.read_text(encoding="utf-8"))
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "n_samples": payload["n_samples"],
            "metrics": {k: v["value"] for k, v in payload["metrics"].items()}}


def in_memory(path: Path) -> dict:
    """The same metrics from all texts at once (the registry's in-memory path), for the equality check."""
    from clusterdiv.io.corpus import load_corpus
    from clusterdiv.metrics.registry import compute_set_metrics

    texts = [e.text for e in load_corpus(path).examples]
    values = compute_set_metrics(texts, select="lexical", seed=0, self_bleu_sample=2000)
    return {k: v.value for k, v in values.items()}


def growth(runs: list[dict]) -> list[dict]:
    """Peak-RSS growth per 100k texts between consecutive sizes (a linear-memory path has a constant one)."""
    return [{"from": a["n"], "to": b["n"],
             "mb_per_100k": (b["peak_rss_mb"] - a["peak_rss_mb"]) / ((b["n"] - a["n"]) / 100_000),
             "wall_ratio": b["wall_s"] / a["wall_s"], "size_ratio": b["n"] / a["n"]}
            for a, b in zip(runs, runs[1:], strict=False)]


def render(res: dict) -> str:
    lines = ["### Lexical metrics at scale (`clusterdiv metrics FILE --metrics lexical`)", "",
             "Recombined CLINC150 half-utterances, JSONL, one CLI subprocess per size (texts streamed in "
             "chunks); peak RSS of that subprocess (`os.wait4`).", "",
             "| texts | wall s | peak RSS MB | distinct_2 | distinct_4 | self_bleu (2,000 sampled) | compression |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in res["runs"]:
        m = r["metrics"]
        lines.append(f"| {r['n']:,} | {r['wall_s']:.1f} | {r['peak_rss_mb']:,.0f} | "
                     f"{m.get('distinct_2', float('nan')):.4f} | {m.get('distinct_4', float('nan')):.4f} | "
                     f"{m.get('self_bleu', float('nan')):.4f} | {m.get('compression_ratio', float('nan')):.4f} |")
    lines += ["", "| sizes | peak RSS growth, MB per 100k texts | wall-time ratio | size ratio |",
              "| --- | ---: | ---: | ---: |"]
    lines += [f"| {g['from']:,} -> {g['to']:,} | {g['mb_per_100k']:,.1f} | {g['wall_ratio']:.2f} | "
              f"{g['size_ratio']:.0f} |" for g in growth(res["runs"])]
    check = res.get("in_memory_check")
    if check:
        same = all(check["streamed"][k] == v for k, v in check["in_memory"].items())
        lines += ["", f"Streamed vs in-memory values at {check['n']:,} texts (same run): "
                      f"{'identical' if same else 'DIFFERENT'} for {', '.join(check['in_memory'])}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--from-json", action="store_true")
    args = ap.parse_args()
    if not args.from_json:
        runs = []
        check = None
        with tempfile.TemporaryDirectory() as tmp:
            for n in sorted(args.sizes):
                path = Path(tmp) / f"texts{n}.jsonl"
                write_texts(args.data, n, path)
                runs.append({"n": n, **run_one(path, Path(tmp) / "out.json")})
                if check is None:
                    check = {"n": n, "streamed": runs[-1]["metrics"], "in_memory": in_memory(path)}
                path.unlink()
                print(runs[-1], flush=True)
        OUT.with_suffix(".json").write_text(
            json.dumps({"runs": runs, "growth": growth(runs), "in_memory_check": check}, indent=1), encoding="utf-8")
    res = json.loads(OUT.with_suffix(".json").read_text(encoding="utf-8"))
    OUT.with_suffix(".md").write_text(render(res), encoding="utf-8")
    print(render(res))


if __name__ == "__main__":
    main()
