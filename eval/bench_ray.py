"""`--engine ray` against the in-process engine, and a 1,000,000-example run of the non-LLM stages on Ray.

Part 1, in one process on the same input: extraction (the bundled local model, `--representation
criteria`) and embedding (MiniLM) with the in-process engine, then with a Ray actor pool of 1 and
of 2 workers, each on a fresh temporary cache so every answer is computed. Wall times include the
actors' start and model load, as a user's run pays them. Ratios are against in-process.

Part 2: N synthetic-but-realistic texts (CLINC150 utterances recombined with request prefixes,
suffixes and a second request) written as JSONL, then through Ray: loading (`ray.data.read_json`),
lexical metrics on the cluster (tokens, distinct-1/2 over 64-bit n-gram hashes merged on the driver),
embedding a seeded sample with `--engine ray`, and clustering that sample on the driver with
clusterdiv's any-size method. The driver's peak RSS is read from `getrusage` (the workers and Ray's
object store are other processes).

    python -m eval.bench_ray --data ../shared/data --n-llm 20 --n-embed 2000 --n-big 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
PREFIXES = ["", "", "", "please ", "hey, ", "can you ", "i need to know: ", "quick question, ", "hi there, ",
            "so ", "um, ", "could you help me: "]
SUFFIXES = ["", "", "", " thanks", " please", " asap", " right now", " for me", " if you can", " today",
            " thank you so much", "?"]


def utterances(data_dir: Path) -> list[str]:
    rows = [json.loads(line) for line in (data_dir / "clinc150.jsonl").open(encoding="utf-8")]
    return [r["text"] for r in rows if r.get("intent") not in (None, "oos")]


def write_synthetic(pool: list[str], n: int, path: Path, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            text = rng.choice(PREFIXES) + rng.choice(pool) + rng.choice(SUFFIXES)
            if rng.random() < 0.2:
                text += " and also " + rng.choice(pool)
            out.write(json.dumps({"id": f"s{i}", "text": text}) + "\n")
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- part 1


def timed_stage(kind: str, texts: list[str], engine: Any, llm: str) -> dict[str, Any]:
    from clusterdiv import engine as engines
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.core.prompts import PromptTemplate
    from clusterdiv.core.records import Example
    from clusterdiv.llm.structured import CallStats, LLMSettings
    from clusterdiv.modes.embed import Embedder, embed_texts
    from clusterdiv.modes.extract import extract_criteria

    with tempfile.TemporaryDirectory() as tmp, ModelCache(tmp) as cache, engines.use(engine):
        started = time.perf_counter()
        if kind == "extract":
            stats = CallStats()
            found = extract_criteria([Example(id=str(i), text=t) for i, t in enumerate(texts)],
                                     model=LLMSettings(model=llm), cache=cache,
                                     prompt=PromptTemplate.load(None), stats=stats)
            result = sorted((x.example_id, json.dumps(x.criteria, sort_keys=True), x.error) for x in found)
            calls = stats.calls
        else:
            model = Embedder()
            vectors = embed_texts(texts, model=model, cache=cache)
            result = vectors
            calls = model.calls
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "per_s": len(texts) / elapsed, "calls": calls, "result": result}


def part_one(pool: list[str], n_llm: int, n_embed: int, llm: str, seed: int) -> dict[str, Any]:
    from clusterdiv.engine import EngineSettings

    rng = random.Random(seed)
    llm_texts = rng.sample(pool, n_llm)
    embed_texts_ = rng.sample(pool, n_embed)
    engines = {"in-process": None, "ray-1": EngineSettings(name="ray", workers=1),
               "ray-2": EngineSettings(name="ray", workers=2)}
    out: dict[str, Any] = {}
    for kind, texts in (("extract", llm_texts), ("embed", embed_texts_)):
        rows: dict[str, Any] = {}
        for name, engine in engines.items():
            rows[name] = timed_stage(kind, texts, engine, llm)
            print(f"{kind:8s} {name:10s} {rows[name]['seconds']:7.1f}s  {rows[name]['per_s']:7.2f}/s", flush=True)
        base = rows["in-process"]
        same = {}
        for name, row in rows.items():
            if kind == "extract":
                same[name] = row["result"] == base["result"]
            else:
                same[name] = bool(np.array_equal(row["result"], base["result"]))
        out[kind] = {
            "n": len(texts),
            "engines": {name: {"seconds": round(r["seconds"], 2), "per_s": round(r["per_s"], 3), "calls": r["calls"],
                               "ratio_vs_in_process": round(r["per_s"] / base["per_s"], 3),
                               "same_answers_as_in_process": same[name]} for name, r in rows.items()},
        }
    return out


# ---------------------------------------------------------------- part 2


def _lexical_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per batch: token count, and the batch's unique hashed unigrams and bigrams (merged on the driver)."""
    from clusterdiv.metrics.tokenize import tokenize

    tokens = 0
    uni: set[int] = set()
    bi: set[int] = set()
    for text in batch["text"]:
        words = tokenize(str(text))
        tokens += len(words)
        uni.update(hash(w) for w in words)
        bi.update(hash((a, b)) for a, b in zip(words, words[1:], strict=False))
    return {"tokens": np.array([tokens]), "bigrams": np.array([max(tokens - len(batch["text"]), 0)]),
            "uni": np.array([np.fromiter(uni, dtype=np.int64)], dtype=object),
            "bi": np.array([np.fromiter(bi, dtype=np.int64)], dtype=object)}


def part_two(pool: list[str], n: int, sample: int, seed: int, workers: int) -> dict[str, Any]:
    import ray
    import ray.data

    from clusterdiv import engine as engines
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.modes.cluster import ClusterParams, cluster_vectors
    from clusterdiv.modes.embed import Embedder, embed_texts

    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path = write_synthetic(pool, n, Path(tmp) / "synthetic.jsonl", seed)
        stages["write_jsonl_s"] = time.perf_counter() - started
        size_mb = path.stat().st_size / 2**20

        started = time.perf_counter()
        ds = ray.data.read_json(str(path)).materialize()
        rows = ds.count()
        stages["load_s"] = time.perf_counter() - started

        started = time.perf_counter()
        tokens = bigrams = 0
        uni: list[np.ndarray] = []
        bi: list[np.ndarray] = []
        # PYTHONHASHSEED is fixed cluster-wide (see main) so every worker hashes alike.
        lex = ds.map_batches(_lexical_batch, batch_size=20_000, batch_format="numpy", num_cpus=1,
                             concurrency=workers)
        for batch in lex.iter_batches(batch_size=None, batch_format="numpy"):
            tokens += int(batch["tokens"].sum())
            bigrams += int(batch["bigrams"].sum())
            uni.extend(batch["uni"])
            bi.extend(batch["bi"])
        distinct_1 = len(np.unique(np.concatenate(uni))) / tokens
        distinct_2 = len(np.unique(np.concatenate(bi))) / bigrams
        del uni, bi
        stages["lexical_s"] = time.perf_counter() - started

        started = time.perf_counter()
        fraction = min(1.0, sample * 1.2 / rows)
        texts = [str(row["text"]) for row in ds.random_sample(fraction, seed=seed).take(sample)]
        stages["sample_s"] = time.perf_counter() - started
        del ds, lex

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ModelCache(tmp) as cache, \
            engines.use(engines.EngineSettings(name="ray", workers=workers)):
        vectors = embed_texts(texts, model=Embedder(), cache=cache)
    stages["embed_sample_s"] = time.perf_counter() - started

    started = time.perf_counter()
    clustering = cluster_vectors(vectors, params=ClusterParams().for_representation("text"), seed=seed)
    stages["cluster_sample_s"] = time.perf_counter() - started
    return {
        "n": rows, "jsonl_mb": round(size_mb, 1), "workers": workers,
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "tokens": tokens, "distinct_1": round(distinct_1, 5), "distinct_2": round(distinct_2, 5),
        "embedded_sample": len(vectors), "clustering_method": clustering.method, "n_clusters": clustering.n_clusters,
        "driver_peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n-llm", type=int, default=20)
    parser.add_argument("--n-embed", type=int, default=2000)
    parser.add_argument("--n-big", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-llm", action="store_true", help="part 2 only")
    args = parser.parse_args()

    import ray

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONHASHSEED": "0", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}})
    workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    pool = utterances(args.data)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "ray_cpus": workers, "ray": ray.__version__}
    started = time.perf_counter()
    if not args.skip_llm:
        result["engines"] = part_one(pool, args.n_llm, args.n_embed, args.model, args.seed)
    result["non_llm"] = []
    for n in (n for n in args.n_big if n > 0):  # --n-big 0: part 1 only
        run = part_two(pool, n, args.sample, args.seed, workers)
        print(json.dumps(run), flush=True)
        result["non_llm"].append(run)
    result["total_s"] = round(time.perf_counter() - started, 1)
    ray.shutdown()

    RESULTS.mkdir(exist_ok=True)
    # Part 2 in its own process (--skip-llm), so the driver's peak RSS is not the in-process models'.
    name = "bench_ray" if not args.skip_llm else "bench_ray_non_llm"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(render(result, args))
    print(render(result, args))


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    lines = ["# bench_ray", "",
             f"`python -m eval.bench_ray --n-llm {args.n_llm} --n-embed {args.n_embed} --n-big "
             f"{' '.join(map(str, args.n_big))} --sample {args.sample}`{' --skip-llm' if args.skip_llm else ''}; "
             f"{result['cpus']} cores, Ray {result['ray']} local cluster with {result['ray_cpus']} CPUs, one process.", ""]
    for kind, block in result.get("engines", {}).items():
        lines += [f"## {kind} ({block['n']} texts, fresh cache)", "",
                  "| engine | seconds | per second | ratio vs in-process | same answers |", "| --- | --- | --- | --- | --- |"]
        for name, row in block["engines"].items():
            lines.append(f"| {name} | {row['seconds']} | {row['per_s']} | {row['ratio_vs_in_process']} | "
                         f"{row['same_answers_as_in_process']} |")
        lines.append("")
    for run in result["non_llm"]:
        lines += [f"## non-LLM stages, {run['n']:,} examples ({run['jsonl_mb']} MB JSONL), {run['workers']} Ray workers", "",
                  "| stage | seconds |", "| --- | --- |"]
        lines += [f"| {k[:-2]} | {v} |" for k, v in run["stages_s"].items()]
        lines += ["", f"distinct-1 {run['distinct_1']}, distinct-2 {run['distinct_2']} over {run['tokens']:,} tokens; "
                  f"{run['embedded_sample']:,} sampled texts embedded, clustered by `{run['clustering_method']}` into "
                  f"{run['n_clusters']} clusters; driver peak RSS {run['driver_peak_rss_mb']} MB.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
