"""Cold LLM cost: clusterdiv's criteria extraction against raw llama.cpp on the same prompts, one process.

    python -m eval.bench_llm --data ../shared/data --n 40

Three ways to answer the same extraction requests with the bundled SmolLM2-135M GGUF, each on its own
llama.cpp context with the same threads, temperature, seed and max_tokens:

* `raw + grammar`: `Llama.create_chat_completion` with the prompt's JSON schema (what clusterdiv asks);
* `clusterdiv`: `extract_criteria` through litellm, the local provider, validation and a fresh cache;
* `raw, free`: the same messages with no schema, to price the grammar itself.

The texts are split into chunks and the three run chunk by chunk in turn, so a noisy neighbour on
the shared CPU slows all three alike; each context answers one warm-up request first (model load and
the first prompt's KV fill are not counted). Reported: seconds per example, prompt and completion
tokens, decode tokens/s, clusterdiv's throughput as a share of raw llama.cpp's, and how often
clusterdiv's criteria equal the raw answers' (same prompts, same decoding).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

RESULTS = Path(__file__).parent / "results"


def load_texts(data: Path, n: int, seed: int) -> list[str]:
    rows = [json.loads(line) for line in (data / "clinc150.jsonl").open(encoding="utf-8")]
    texts = sorted({r["text"] for r in rows if r.get("intent") != "oos"})
    random.Random(seed).shuffle(texts)
    return texts[: n + 1]  # the first is the warm-up request


class RawLlama:
    """One llama.cpp context, asked exactly what the local provider would forward."""

    def __init__(self, *, grammar: bool, max_tokens: int):
        from llama_cpp import Llama

        from clusterdiv.llm.local import resolve_local_model

        self.llama = Llama(model_path=str(resolve_local_model("smollm2").path), n_ctx=2048,
                           n_threads=max(1, os.cpu_count() or 1), seed=0, verbose=False)
        self.grammar = grammar
        self.max_tokens = max_tokens

    def answer(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"messages": messages, "temperature": 0.0, "seed": 0, "max_tokens": self.max_tokens}
        if self.grammar:
            request["response_format"] = {"type": "json_object", "schema": schema}
        result = self.llama.create_chat_completion(**request)
        return {"content": result["choices"][0]["message"]["content"], **(result.get("usage") or {})}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=None, help="clusterdiv's LLM concurrency (default: its own)")
    args = parser.parse_args(argv)

    from clusterdiv.cache import ModelCache
    from clusterdiv.extract import extract_criteria
    from clusterdiv.llm.structured import CallStats, LLMSettings
    from clusterdiv.prompts import PromptTemplate
    from clusterdiv.records import Example

    prompt = PromptTemplate.load()
    settings = LLMSettings(model="local/smollm2", **({"concurrency": args.concurrency} if args.concurrency else {}))
    schema = prompt.output_model.model_json_schema()
    texts = load_texts(args.data, args.n, args.seed)
    warm, texts = texts[0], texts[1:]

    def messages(text: str) -> list[dict[str, str]]:  # CLINC150 texts are far below max_input_chars
        return prompt.messages(text=text)

    variants: dict[str, dict[str, Any]] = {
        name: {"seconds": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "answers": []}
        for name in ("raw + grammar", "clusterdiv", "raw, free")}
    raw = {"raw + grammar": RawLlama(grammar=True, max_tokens=settings.max_tokens),
           "raw, free": RawLlama(grammar=False, max_tokens=settings.max_tokens)}
    for llama in raw.values():
        llama.answer(messages(warm), schema)
    with tempfile.TemporaryDirectory() as tmp, ModelCache(Path(tmp)) as cache:
        extract_criteria([Example(id="warm", text=warm)], model=settings, cache=cache, prompt=prompt)
        stats = CallStats()
        for start in range(0, len(texts), args.chunk):
            chunk = texts[start:start + args.chunk]
            for name in variants:
                v = variants[name]
                t = time.perf_counter()
                if name == "clusterdiv":
                    before = (stats.prompt_tokens, stats.completion_tokens)
                    out = extract_criteria([Example(id=str(start + i), text=x) for i, x in enumerate(chunk)],
                                           model=settings, cache=cache, prompt=prompt, stats=stats)
                    v["seconds"] += time.perf_counter() - t
                    v["prompt_tokens"] += stats.prompt_tokens - before[0]
                    v["completion_tokens"] += stats.completion_tokens - before[1]
                    v["answers"] += [e.criteria for e in out]
                else:
                    for x in chunk:
                        a = raw[name].answer(messages(x), schema)
                        v["prompt_tokens"] += int(a.get("prompt_tokens", 0))
                        v["completion_tokens"] += int(a.get("completion_tokens", 0))
                        v["answers"].append(a["content"])
                    v["seconds"] += time.perf_counter() - t
            print(f"{start + len(chunk)}/{len(texts)}: " + ", ".join(
                f"{k} {v['seconds']:.1f}s" for k, v in variants.items()), flush=True)
        calls = stats.calls

    def parsed(content: str) -> dict[str, str] | None:
        try:
            return {k: str(v) for k, v in prompt.output_model.model_validate_json(content).model_dump().items()}
        except ValueError:
            return None

    ours = variants["clusterdiv"]["answers"]
    theirs = [parsed(c) for c in variants["raw + grammar"]["answers"]]
    same = sum(a is not None and b is not None and {k: v.strip() for k, v in a.items()}
               == {k: v.strip() for k, v in b.items()} for a, b in zip(ours, theirs, strict=True))
    n = len(texts)
    rows = {}
    for name, v in variants.items():
        rows[name] = {"seconds": round(v["seconds"], 3), "s_per_example": round(v["seconds"] / n, 4),
                      "prompt_tokens": v["prompt_tokens"], "completion_tokens": v["completion_tokens"],
                      "decode_tokens_per_s": round(v["completion_tokens"] / v["seconds"], 2) if v["seconds"] else None}
    result = {
        "command": "python -m eval.bench_llm " + " ".join(argv or []),
        "n": n, "chunk": args.chunk, "concurrency": settings.concurrency, "cpu_count": os.cpu_count(), "max_tokens": settings.max_tokens,
        "variants": rows,
        "clusterdiv_throughput_vs_raw_grammar": round(rows["raw + grammar"]["seconds"] / rows["clusterdiv"]["seconds"], 3),
        "grammar_cost_ratio": round(rows["raw + grammar"]["seconds"] / rows["raw, free"]["seconds"], 3),
        "clusterdiv_llm_calls": calls,
        "clusterdiv_answers_equal_raw": same,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_llm.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lines = ["# Cold LLM cost: clusterdiv extraction vs raw llama.cpp (eval/bench_llm.py)", "",
             f"{n} CLINC150 texts, bundled SmolLM2-135M (Q4_1), {os.cpu_count()} CPU threads, temperature 0, "
             f"max_tokens {settings.max_tokens}; chunks of {args.chunk} in turn, one warm-up request each.", "",
             "| variant | s / example | prompt tokens | completion tokens | decode tokens/s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['s_per_example']:.3f} | {r['prompt_tokens']} | {r['completion_tokens']} | "
                     f"{r['decode_tokens_per_s']} |")
    lines += ["", f"clusterdiv's throughput is {result['clusterdiv_throughput_vs_raw_grammar']:.0%} of raw llama.cpp's "
              f"on the same requests ({calls} calls for {n} texts; its criteria equal the raw answers' for {same} of {n}); "
              f"the grammar costs {result['grammar_cost_ratio']:.2f}x the free decoding's time."]
    (RESULTS / "bench_llm.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
