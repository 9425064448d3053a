"""Service benchmark: status-poll latency under 50 concurrent clients, and job throughput.

Everything runs against one real `clusterdiv serve` process on 127.0.0.1, started here, so the
ratios compare like with like on a shared, noisy machine:

* **Poll latency.** 50 asyncio clients poll `GET /v1/jobs/{id}` (a database read + JSON) as fast
  as they can, while the server's workers are idle and again while they run jobs. The baseline
  in the same process is `GET /healthz` (no database) under the same 50 clients.
* **Throughput.** N score jobs are submitted at once, cold (empty cache: every LLM call and
  embedding is paid), then the same N jobs again, warm (every answer from the cache). Jobs/s for
  both and the warm/cold ratio. Warm jobs still cluster, name, lay out and bootstrap.

    python -m eval.bench_service --data ../shared/data              # real CLINC150 texts
    python -m eval.bench_service --model fake/echo                  # plumbing only (tests' fake LLM)

Writes eval/results/bench_service.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # service_server, fake_llm


def load_texts(data_dir: Path | None, n: int, seed: int) -> list[str]:
    if data_dir is not None and (data_dir / "clinc150.jsonl").exists():
        rows = [json.loads(line) for line in (data_dir / "clinc150.jsonl").open(encoding="utf-8")]
        texts = [r["text"] for r in rows if r.get("intent") not in (None, "oos")]
    else:
        from clusterdiv.io.demo import load

        texts = [e.text for e in load("real")] + [e.text for e in load("synthetic_collapsed")]
    random.Random(seed).shuffle(texts)
    return texts[:n]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"n": len(ordered), "p50_ms": pick(0.50), "p90_ms": pick(0.90), "p99_ms": pick(0.99),
            "mean_ms": statistics.fmean(ordered) * 1000}


async def hammer(url: str, path: str, *, clients: int, seconds: float, headers: dict[str, str]) -> list[float]:
    """`clients` concurrent loops GETting `path` for `seconds`; returns every request's latency."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:
        async def loop() -> None:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - t)
                response.raise_for_status()

        await asyncio.gather(*(loop() for _ in range(clients)))
    return latencies


async def run_jobs(url: str, jobs: list[list[str]], options: dict) -> tuple[float, list[dict]]:
    """Submit all jobs at once and wait for every one; returns (seconds, final views)."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        submitted = await asyncio.gather(*(client.post("/v1/jobs", json={"kind": "score", "texts": t,
                                                                          "options": options}) for t in jobs))
        ids = [r.raise_for_status().json()["id"] for r in submitted]
        views: dict[str, dict] = {}
        while len(views) < len(ids):
            for job_id in ids:
                if job_id in views:
                    continue
                view = (await client.get(f"/v1/jobs/{job_id}")).json()
                if view["status"] in ("succeeded", "failed"):
                    views[job_id] = view
            await asyncio.sleep(0.2)
    return time.perf_counter() - started, [views[i] for i in ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="../shared/data (else the built-in demo texts)")
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--examples", type=int, default=10, help="examples per job")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from service_server import ServerProcess

    texts = load_texts(args.data, args.jobs * args.examples, args.seed)
    jobs = [texts[i * args.examples:(i + 1) * args.examples] for i in range(args.jobs)]
    options = {"metrics": "all", "bootstrap": 200}
    out: dict = {"model": args.model, "jobs": args.jobs, "examples_per_job": args.examples,
                 "clients": args.clients, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp), args=["--model", args.model, "--workers", str(args.workers)]).start()
        try:
            probe = httpx.post(f"{server.url}/v1/jobs", json={"kind": "score", "texts": jobs[0][:3],
                                                              "options": {"metrics": "none"}}).json()["id"]
            while httpx.get(f"{server.url}/v1/jobs/{probe}").json()["status"] not in ("succeeded", "failed"):
                time.sleep(0.2)  # loads the models once, outside every measurement
            poll = f"/v1/jobs/{probe}"
            idle_health = asyncio.run(hammer(server.url, "/healthz", clients=args.clients, seconds=args.seconds,
                                             headers={}))
            idle_poll = asyncio.run(hammer(server.url, poll, clients=args.clients, seconds=args.seconds, headers={}))
            out["idle"] = {"healthz": percentiles(idle_health), "status_poll": percentiles(idle_poll)}

            cold_s, cold_views = asyncio.run(run_jobs(server.url, jobs, options))

            async def busy_poll() -> list[float]:
                # Resubmit the same jobs (warm) and poll while they run.
                runner = asyncio.create_task(run_jobs(server.url, jobs, options))
                latencies = await hammer(server.url, poll, clients=args.clients, seconds=args.seconds, headers={})
                await runner
                return latencies

            out["busy_status_poll"] = percentiles(asyncio.run(busy_poll()))
            warm_s, warm_views = asyncio.run(run_jobs(server.url, jobs, options))
        finally:
            server.stop()
    failed = [v for v in cold_views + warm_views if v["status"] != "succeeded"]
    out["throughput"] = {
        "cold_s": cold_s, "cold_jobs_per_s": args.jobs / cold_s,
        "warm_s": warm_s, "warm_jobs_per_s": args.jobs / warm_s, "warm_over_cold": cold_s / warm_s,
        "failed_jobs": len(failed),
        "same_scores": [v["summary"]["score_normalized"] for v in cold_views]
        == [v["summary"]["score_normalized"] for v in warm_views],
    }
    idle = out["idle"]
    out["ratios"] = {
        "poll_p50_over_healthz_p50": idle["status_poll"]["p50_ms"] / idle["healthz"]["p50_ms"],
        "busy_poll_p99_over_idle_poll_p99": out["busy_status_poll"]["p99_ms"] / idle["status_poll"]["p99_ms"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_service.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
