"""Lexical metrics at 10k / 100k / 1M texts: wall time and peak memory of `clusterdiv metrics --metrics lexical`.

Issue 15 asks for lexical metrics over 1,000,000 texts in bounded memory. The texts are realistic
rather than random: each is the first half of one CLINC150 utterance joined to the second half of
another (seeded), so vocabulary and n-gram repetition grow the way a large synthetic batch's do.
Each size runs as its own subprocess of the real CLI, once on JSONL and once on CSV holding the
same texts (both streamed in chunks), and its peak RSS is that child's own `ru_maxrss` from
`os.wait4`. The smallest size is also computed in memory in this process (`compute_set_metrics` on
all texts) and the values compared, so the streamed path is checked against the in-memory one in
the same run; every CSV run must give the JSONL run's values exactly. At the largest size a
baseline child rebuilds the path the CLI took for CSV before it streamed (the whole file read and
parsed into rows, then the texts fed to the same metrics in chunks), so the streamed CSV run is
compared with whole-file parsing in one run.

    python eval/bench_lexical_scale.py [--data ../shared/data] [--sizes 10000 100000 1000000] [--no-baseline]
"""

from __future__ import annotations

import argparse
import csv
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


BASELINE = """import json, sys
from pathlib import Path
# What `stream_texts` did for CSV before it streamed: the whole file read and parsed into rows, then
# the valid texts handed to the same metrics in chunks (the private readers, to rebuild that path)
from clusterdiv.io.corpus._build import choose_fields, row_text
from clusterdiv.io.corpus._csv import parse_csv
from clusterdiv.io.corpus._read import read_bytes
from clusterdiv.metrics.registry import compute_lexical_metrics
parsed = parse_csv(read_bytes(Path(sys.argv[1]), sys.argv[1], "csv"), sys.argv[1], ",")
field = choose_fields(parsed.fields, False, shown=sys.argv[1], text_field=None)
texts = [row_text(row, False, field)[0] for row in parsed.rows]
values = compute_lexical_metrics((texts[i : i + 50_000] for i in range(0, len(texts), 50_000)),
                                 seed=0, self_bleu_sample=2000)
json.dump({"n_samples": len(texts), "metrics": {k: v.model_dump(mode="json") for k, v in values.items()}}, sys.stdout)
"""


def write_texts(data: Path, n: int, path: Path, seed: int = 0) -> None:
    """The same seeded texts as JSONL (`path`) and as CSV (`path` with suffix .csv)."""
    texts = [json.loads(line)["text"] for line in (data / "clinc150.jsonl").read_text(encoding="utf-8").splitlines()
             if line]
    halves = [(t.split()[: max(1, len(t.split()) // 2)], t.split()[max(1, len(t.split()) // 2):]) for t in texts]
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh, path.with_suffix(".csv").open("w", encoding="utf-8", newline="") as fc:
        writer = csv.writer(fc)
        writer.writerow(["id", "text"])
        for i in range(n):
            a, b = rng.choice(halves)[0], rng.choice(halves)[1]
            fh.write(json.dumps({"id": f"t{i}", "text": " ".join(a + b)}) + "\n")
            writer.writerow([f"t{i}", " ".join(a + b)])


def run_one(path: Path, out: Path, baseline: bool = False) -> dict:
    t0 = time.perf_counter()
    argv = ["-c", BASELINE, str(path)] if baseline else \
        ["-c", CLI, "metrics", str(path), "--metrics", "lexical", "--format", "json"]
    with out.open("wb") as stdout:
        proc = subprocess.Popen([sys.executable, *argv], stdout=stdout, env={**os.environ})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the max over all children
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"clusterdiv metrics failed with exit code {proc.returncode}")
    payload = json.loads(out.read_text(encoding="utf-8"))
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "n_samples": payload["n_samples"],
            "load_1m": os.getloadavg()[0],  # the machine is shared: wall times are only as steady as this
            "metrics": {k: v["value"] for k, v in payload["metrics"].items()}}


def in_memory(path: Path) -> dict:
    """The same metrics from all texts at once (the registry's in-memory path), for the equality check."""
    from clusterdiv.io.corpus import load_corpus
    from clusterdiv.metrics.registry import compute_set_metrics

    texts = [e.text for e in load_corpus(path).examples]
    values = compute_set_metrics(texts, select="lexical", seed=0, self_bleu_sample=2000)
    return {k: v.value for k, v in values.items()}


def reader_speed(jsonl: Path, repeats: int = 3) -> dict:
    """Reading alone (no metrics), in this process, interleaved and best of `repeats`: the streamed
    CSV reader vs parsing the CSV whole (its path before streaming), and the one-parse JSONL reader
    vs the same plus the field-name pass it used to make first. Ratios, so the shared machine's load
    cancels out as far as it can."""
    from clusterdiv.io.corpus import stream_texts
    from clusterdiv.io.corpus._build import choose_fields, row_text
    from clusterdiv.io.corpus._csv import parse_csv
    from clusterdiv.io.corpus._read import read_bytes
    from clusterdiv.io.corpus._source import file_lines
    from clusterdiv.io.corpus._stream import _fields, _jsonl_rows

    csv_path = jsonl.with_suffix(".csv")

    def csv_whole() -> int:
        parsed = parse_csv(read_bytes(csv_path, str(csv_path), "csv"), str(csv_path), ",")
        field = choose_fields(parsed.fields, False, shown=str(csv_path), text_field=None)
        return sum(row_text(row, False, field)[1] is None for row in parsed.rows)

    def jsonl_two_pass() -> int:
        _fields(_jsonl_rows(file_lines(jsonl, str(jsonl))))
        return sum(len(c) for c in stream_texts(jsonl))

    cases = {"csv_streamed": lambda: sum(len(c) for c in stream_texts(csv_path)), "csv_whole": csv_whole,
             "jsonl_streamed": lambda: sum(len(c) for c in stream_texts(jsonl)), "jsonl_two_pass": jsonl_two_pass}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {"n": sum(1 for _ in jsonl.open("rb")), "best_s": best,
            "csv_streamed_vs_whole": best["csv_streamed"] / best["csv_whole"],
            "jsonl_one_parse_vs_two": best["jsonl_streamed"] / best["jsonl_two_pass"]}


def by_format(runs: list[dict], fmt: str) -> list[dict]:
    return [r for r in runs if r.get("format", "jsonl") == fmt]


def growth(runs: list[dict]) -> list[dict]:
    """Peak-RSS growth per 100k texts between consecutive sizes (a linear-memory path has a constant one)."""
    return [{"from": a["n"], "to": b["n"],
             "mb_per_100k": (b["peak_rss_mb"] - a["peak_rss_mb"]) / ((b["n"] - a["n"]) / 100_000),
             "wall_ratio": b["wall_s"] / a["wall_s"], "size_ratio": b["n"] / a["n"]}
            for a, b in zip(runs, runs[1:], strict=False)]


def render(res: dict) -> str:
    lines = ["### Lexical metrics at scale (`clusterdiv metrics FILE --metrics lexical`)", "",
             "Recombined CLINC150 half-utterances, the same texts as JSONL and as CSV, one CLI subprocess per "
             "size and format (texts streamed in chunks); peak RSS of that subprocess (`os.wait4`). The machine "
             "is shared (2 cores): wall times move with the load average shown, peak RSS does not.", "",
             "| format | texts | wall s | load avg (1 min) | peak RSS MB | distinct_2 | distinct_4 "
             "| self_bleu (2,000 sampled) | compression |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in res["runs"]:
        m = r["metrics"]
        lines.append(f"| {r.get('format', 'jsonl')} | {r['n']:,} | {r['wall_s']:.1f} | "
                     f"{r.get('load_1m', float('nan')):.1f} | {r['peak_rss_mb']:,.0f} | "
                     f"{m.get('distinct_2', float('nan')):.4f} | {m.get('distinct_4', float('nan')):.4f} | "
                     f"{m.get('self_bleu', float('nan')):.4f} | {m.get('compression_ratio', float('nan')):.4f} |")
    lines += ["", "| format | sizes | peak RSS growth, MB per 100k texts | wall-time ratio | size ratio |",
              "| --- | --- | ---: | ---: | ---: |"]
    for fmt in ("jsonl", "csv"):
        lines += [f"| {fmt} | {g['from']:,} -> {g['to']:,} | {g['mb_per_100k']:,.1f} | {g['wall_ratio']:.2f} | "
                  f"{g['size_ratio']:.0f} |" for g in growth(by_format(res["runs"], fmt))]
    pairs = [(j, c) for j in by_format(res["runs"], "jsonl") for c in by_format(res["runs"], "csv") if j["n"] == c["n"]]
    if pairs:
        lines += ["", "CSV vs JSONL, same texts, same run: " + "; ".join(
            f"{j['n']:,} texts: wall {c['wall_s'] / j['wall_s']:.2f}x, peak RSS {c['peak_rss_mb'] / j['peak_rss_mb']:.2f}x, "
            f"values {'identical' if c['metrics'] == j['metrics'] else 'DIFFERENT'}" for j, c in pairs) + "."]
    base = res.get("baseline")
    if base:
        streamed = next(c for c in by_format(res["runs"], "csv") if c["n"] == base["n"])
        lines += ["", f"Baseline at {base['n']:,} texts: the CSV read and parsed whole, then the same "
                      f"metrics in chunks (the CLI's CSV path before streaming): {base['wall_s']:.1f} s, "
                      f"{base['peak_rss_mb']:,.0f} MB peak. Streamed CSV vs that baseline: peak RSS "
                      f"{streamed['peak_rss_mb'] / base['peak_rss_mb']:.2f}x, wall {streamed['wall_s'] / base['wall_s']:.2f}x, "
                      f"values {'identical' if streamed['metrics'] == base['metrics'] else 'DIFFERENT'}."]
    speed = res.get("reader_speed")
    if speed:
        b = speed["best_s"]
        lines += ["", f"Reading only, {speed['n']:,} texts, in one process, best of 3 interleaved: streamed CSV "
                      f"{b['csv_streamed']:.2f} s vs parsed whole {b['csv_whole']:.2f} s "
                      f"(**{speed['csv_streamed_vs_whole']:.2f}x**); JSONL parsed once {b['jsonl_streamed']:.2f} s vs "
                      f"with the former field-name pass first {b['jsonl_two_pass']:.2f} s "
                      f"(**{speed['jsonl_one_parse_vs_two']:.2f}x**)."]
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
    ap.add_argument("--no-baseline", action="store_true", help="skip the whole-file CSV baseline at the largest size")
    args = ap.parse_args()
    if not args.from_json:
        runs = []
        check = None
        baseline = None
        speed = None
        with tempfile.TemporaryDirectory() as tmp:
            for n in sorted(args.sizes):
                path = Path(tmp) / f"texts{n}.jsonl"
                write_texts(args.data, n, path)
                for fmt, file in (("jsonl", path), ("csv", path.with_suffix(".csv"))):
                    runs.append({"format": fmt, "n": n, **run_one(file, Path(tmp) / "out.json")})
                    print(runs[-1], flush=True)
                if check is None:
                    check = {"n": n, "streamed": runs[-2]["metrics"], "in_memory": in_memory(path)}
                if n == 100_000 or (speed is None and n == max(args.sizes)):
                    speed = reader_speed(path)
                    print("reader", speed, flush=True)
                if n == max(args.sizes) and not args.no_baseline:
                    baseline = {"n": n, **run_one(path.with_suffix(".csv"), Path(tmp) / "out.json", baseline=True)}
                    print("baseline", baseline, flush=True)
                path.unlink()
                path.with_suffix(".csv").unlink()
        OUT.with_suffix(".json").write_text(
            json.dumps({"runs": runs, "growth": {fmt: growth(by_format(runs, fmt)) for fmt in ("jsonl", "csv")},
                        "in_memory_check": check, "baseline": baseline, "reader_speed": speed}, indent=1), encoding="utf-8")
    res = json.loads(OUT.with_suffix(".json").read_text(encoding="utf-8"))
    OUT.with_suffix(".md").write_text(render(res), encoding="utf-8")
    print(render(res))


if __name__ == "__main__":
    main()
