"""Cold LLM cost: clusterdiv's criteria extraction against raw llama.cpp on the same prompts, one process.

    python -m eval.bench_llm --data ../shared/data --n 30

The same extraction requests answered with the bundled SmolLM2-135M GGUF in several ways, each on its
own llama.cpp context with the same threads, temperature, seed and max_tokens:

* `raw + grammar`: `Llama.create_chat_completion` with the prompt's JSON schema (what clusterdiv asks),
  called from the main thread: the baseline;
* `clusterdiv`: `extract_criteria` as the library does it now (litellm's sync `completion` on the local
  provider's one model thread, the grammar converted once per schema);
* `raw, free`: the same messages with no schema, to price the grammar itself;
* `clusterdiv, one thread, async litellm`: the provider as now, but called through `litellm.acompletion`
  (the step "off litellm's async path" taken away);
* `clusterdiv, before`: the provider as it was before (issue 15 item 4): `litellm.acompletion`, the call
  run by `asyncio.to_thread` (a new thread per event loop), the grammar built per call.

The first three run in phase 1, the last two (with `raw + grammar` again, as `raw + grammar, phase 2`)
in phase 2, because litellm's async path leaves background work behind that slows later llama.cpp
calls in the same process: each ratio is taken within its own phase. Within a phase the texts are split
into chunks and the variants run chunk by chunk in turn, so a noisy neighbour on the shared CPU slows
all of them alike; each context answers one warm-up request first (model load and the first prompt's
KV fill are not counted). Reported per variant: seconds per example, prompt and completion tokens,
prompt tokens llama.cpp actually evaluated (the rest came from the KV cache's shared prefix), decode
tokens/s, and whether the answers equal the raw ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

RESULTS = Path(__file__).parent / "results"
PHASES = {1: ("raw + grammar", "clusterdiv", "raw, free"),
          2: ("raw + grammar, phase 2", "clusterdiv, one thread, async litellm", "clusterdiv, before")}
PROVIDERS = {"clusterdiv, one thread, async litellm": "benchasync", "clusterdiv, before": "benchbefore"}


def load_texts(data: Path, n: int, seed: int) -> list[str]:
    rows = [json.loads(line) for line in (data / "clinc150.jsonl").open(encoding="utf-8")]
    texts = sorted({r["text"] for r in rows if r.get("intent") != "oos"})
    random.Random(seed).shuffle(texts)
    return texts[: n + 1]  # the first is the warm-up request


def new_llama() -> Any:
    from llama_cpp import Llama

    from clusterdiv.llm.local import default_threads, resolve_local_model

    threads = default_threads()  # the provider's count, so raw and clusterdiv run alike
    return Llama(model_path=str(resolve_local_model("smollm2").path), n_ctx=2048,
                 n_threads=threads, n_threads_batch=threads, seed=0, verbose=False)


def prompt_tokens_evaluated(llama: Any) -> int:
    """Prompt tokens llama.cpp decoded on this context so far (prefix-cache hits are not decoded)."""
    import llama_cpp

    return int(llama_cpp.llama_perf_context(llama.ctx).n_p_eval)


class RawLlama:
    """One llama.cpp context, asked exactly what the local provider forwards."""

    def __init__(self, *, grammar: bool, max_tokens: int):
        self.llama = new_llama()
        self.grammar = grammar
        self.max_tokens = max_tokens

    def answer(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"messages": messages, "temperature": 0.0, "seed": 0, "max_tokens": self.max_tokens}
        if self.grammar:
            request["response_format"] = {"type": "json_object", "schema": schema}
        result = self.llama.create_chat_completion(**request)
        return {"content": result["choices"][0]["message"]["content"], **(result.get("usage") or {})}


def bench_providers() -> dict[str, Any]:
    """The two comparison providers of phase 2, registered as litellm custom providers like `local`."""
    from litellm.llms.custom_llm import CustomLLM

    from clusterdiv.llm.local import LocalLlamaProvider, _json_schema_from_response_format

    class AsyncLitellm(LocalLlamaProvider):
        """Today's provider, but `agenerate_structured` finds no executor, so it uses litellm.acompletion."""

        executor = None

    class Before(CustomLLM):
        """The provider before issue 15 item 4, as it was: to_thread, the lock, response_format per call."""

        def __init__(self) -> None:
            super().__init__()
            self.llama = new_llama()
            self._lock = threading.Lock()

        def completion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,
                       model_response: Any, print_verbose: Any, encoding: Any, api_key: Any,
                       logging_obj: Any, optional_params: dict, **kwargs: Any) -> Any:
            from litellm.types.utils import Usage

            params = dict(optional_params)
            schema = _json_schema_from_response_format(params.pop("response_format", None))
            request: dict[str, Any] = {"messages": messages, "temperature": float(params.get("temperature", 0.0)),
                                       "seed": int(params.get("seed", 0)),
                                       "max_tokens": int(params.get("max_tokens", 256))}
            if schema is not None:
                request["response_format"] = {"type": "json_object", "schema": schema}
            with self._lock:
                result = self.llama.create_chat_completion(**request)
            model_response.choices[0].message.content = result["choices"][0]["message"]["content"]
            usage = result.get("usage") or {}
            model_response.usage = Usage(prompt_tokens=usage.get("prompt_tokens", 0),
                                         completion_tokens=usage.get("completion_tokens", 0),
                                         total_tokens=usage.get("total_tokens", 0))
            return model_response

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(self.completion, *args, **kwargs)

    return {PROVIDERS["clusterdiv, one thread, async litellm"]: AsyncLitellm(),
            PROVIDERS["clusterdiv, before"]: Before()}


def grammar_cost_ms(schema: dict[str, Any], llama: Any, repeats: int = 50) -> dict[str, float]:
    """What building the grammar per call would cost: schema -> GBNF, and GBNF -> llama.cpp sampler."""
    from llama_cpp import _internals
    from llama_cpp.llama_grammar import LlamaGrammar

    text = json.dumps(schema)
    t = time.perf_counter()
    for _ in range(repeats):
        grammar = LlamaGrammar.from_json_schema(text, verbose=False)
    convert = (time.perf_counter() - t) / repeats * 1000
    t = time.perf_counter()
    for _ in range(repeats):
        _internals.LlamaSampler().add_grammar(llama._model, grammar)
    return {"schema_to_gbnf_ms": round(convert, 3), "gbnf_to_sampler_ms": round((time.perf_counter() - t) / repeats * 1000, 3)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.core.prompts import PromptTemplate
    from clusterdiv.core.records import Example
    from clusterdiv.llm.plugins import get_registry
    from clusterdiv.llm.structured import CallStats, LLMSettings
    from clusterdiv.modes.extract import extract_criteria

    prompt = PromptTemplate.load()
    base = LLMSettings(model="local/smollm2", **({"concurrency": args.concurrency} if args.concurrency else {}))
    schema = prompt.output_model.model_json_schema()
    texts = load_texts(args.data, args.n, args.seed)
    warm, texts = texts[0], texts[1:]
    registry = get_registry()
    for name, handler in bench_providers().items():
        registry.register_llm_provider(name, handler)
    settings = {"clusterdiv": base, **{v: base.model_copy(update={"model": f"{p}/smollm2"}) for v, p in PROVIDERS.items()}}

    def llama_of(variant: str) -> Any:
        handler = registry.handler_for(settings[variant].model)
        return handler.llama if hasattr(handler, "llama") else handler._llama("smollm2")

    variants: dict[str, dict[str, Any]] = {name: {"seconds": 0.0, "prompt_tokens": 0, "completion_tokens": 0,
                                                  "prompt_tokens_evaluated": 0, "answers": []}
                                           for phase in PHASES.values() for name in phase}
    raw = {"raw + grammar": RawLlama(grammar=True, max_tokens=base.max_tokens),
           "raw, free": RawLlama(grammar=False, max_tokens=base.max_tokens),
           "raw + grammar, phase 2": RawLlama(grammar=True, max_tokens=base.max_tokens)}
    grammar_ms = grammar_cost_ms(schema, raw["raw + grammar"].llama)
    calls = {}
    with tempfile.TemporaryDirectory() as tmp, ModelCache(Path(tmp)) as cache:
        for phase, names in PHASES.items():
            for name in names:  # warm-up: model load and the prompt prefix's first KV fill
                if name in raw:
                    raw[name].answer(prompt.messages(text=warm), schema)
                else:
                    extract_criteria([Example(id=f"warm {name}", text=warm)], model=settings[name], cache=cache,
                                     prompt=prompt)
            stats = {name: CallStats() for name in names if name not in raw}
            for start in range(0, len(texts), args.chunk):
                chunk = texts[start:start + args.chunk]
                for name in names:
                    v = variants[name]
                    llama = raw[name].llama if name in raw else llama_of(name)
                    evaluated = prompt_tokens_evaluated(llama)
                    t = time.perf_counter()
                    if name in raw:
                        for x in chunk:
                            a = raw[name].answer(prompt.messages(text=x), schema)
                            v["prompt_tokens"] += int(a.get("prompt_tokens", 0))
                            v["completion_tokens"] += int(a.get("completion_tokens", 0))
                            v["answers"].append(a["content"])
                        v["seconds"] += time.perf_counter() - t
                    else:
                        s = stats[name]
                        before = (s.prompt_tokens, s.completion_tokens)
                        out = extract_criteria([Example(id=f"{name} {start + i}", text=x) for i, x in enumerate(chunk)],
                                               model=settings[name], cache=cache, prompt=prompt, stats=s)
                        v["seconds"] += time.perf_counter() - t
                        v["prompt_tokens"] += s.prompt_tokens - before[0]
                        v["completion_tokens"] += s.completion_tokens - before[1]
                        v["answers"] += [e.criteria for e in out]
                    v["prompt_tokens_evaluated"] += prompt_tokens_evaluated(llama) - evaluated
                print(f"phase {phase}, {start + len(chunk)}/{len(texts)}: " + ", ".join(
                    f"{k} {variants[k]['seconds']:.1f}s" for k in names), flush=True)
            calls.update({name: s.calls for name, s in stats.items()})
    local = registry.handler_for("local/smollm2")

    def parsed(content: Any) -> dict[str, str] | None:
        if isinstance(content, dict) or content is None:
            return content
        try:
            return {k: str(v) for k, v in prompt.output_model.model_validate_json(content).model_dump().items()}
        except ValueError:
            return None

    reference = [parsed(c) for c in variants["raw + grammar"]["answers"]]

    def same(answers: list[Any]) -> int:
        strip = lambda d: {k: v.strip() for k, v in d.items()}  # noqa: E731
        return sum(a is not None and b is not None and strip(a) == strip(b)
                   for a, b in zip((parsed(x) for x in answers), reference, strict=True))

    n = len(texts)
    rows = {}
    for name, v in variants.items():
        rows[name] = {"seconds": round(v["seconds"], 3), "s_per_example": round(v["seconds"] / n, 4),
                      "prompt_tokens": v["prompt_tokens"], "completion_tokens": v["completion_tokens"],
                      "prompt_tokens_evaluated": v["prompt_tokens_evaluated"],
                      "decode_tokens_per_s": round(v["completion_tokens"] / v["seconds"], 2) if v["seconds"] else None,
                      "answers_equal_raw": same(v["answers"]), "llm_calls": calls.get(name)}
    share = lambda ours, theirs: round(rows[theirs]["seconds"] / rows[ours]["seconds"], 3)  # noqa: E731
    return {
        "command": "python -m eval.bench_llm " + " ".join(args.argv),
        "n": n, "chunk": args.chunk, "concurrency": base.concurrency, "cpu_count": os.cpu_count(),
        "max_tokens": base.max_tokens, "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "variants": rows,
        "throughput_vs_raw_grammar": {
            "clusterdiv": share("clusterdiv", "raw + grammar"),
            "clusterdiv, one thread, async litellm": share("clusterdiv, one thread, async litellm",
                                                           "raw + grammar, phase 2"),
            "clusterdiv, before": share("clusterdiv, before", "raw + grammar, phase 2"),
        },
        "grammar_cost_ratio": round(rows["raw + grammar"]["seconds"] / rows["raw, free"]["seconds"], 3),
        "grammar_build_per_call": grammar_ms,
        "local_provider": {"grammars_compiled": local.grammars_compiled, "calls": local.calls},
    }


NOTES = """\
## What each step is

- **One model thread, sync litellm.** `LocalLlamaProvider` runs every llama.cpp call on its own single
  thread (`executor`), and `agenerate_structured` calls the sync `litellm.completion` on that thread for a
  provider that offers one. Before, `acompletion` went through litellm's async wrapper and then
  `asyncio.to_thread`: a new thread per event loop (every `extract_criteria` call runs its own loop), and
  llama.cpp's OpenMP build keeps a team of worker threads per calling thread; litellm's async path also
  queues background logging tasks on a loop that is gone by the next call. The provider is still the
  litellm provider `local/smollm2`; remote models keep `litellm.acompletion`.
- **Grammar once per schema.** The provider converts a schema to its llama.cpp grammar once and passes it
  as `grammar=` (the same GBNF text llama-cpp-python builds from `response_format`, so the same answers).
  Building it per call cost the `grammar_build_per_call` milliseconds above: real but small next to a call.
  llama-cpp-python still turns the grammar text into a sampler on every call (`Llama.generate` makes a
  new sampler chain each time, with no public way to keep one), which is the second figure.
- **Prompt-prefix KV reuse.** `Llama.generate` keeps the previous call's tokens and re-decodes only from
  the first differing token, so each call decodes the text and the closing turn, not the system prompt
  and few-shot examples: compare `prompt evaluated` with `prompt tokens`. Calls are serialised on one
  context, so the shared prefix stays in the KV cache from one example to the next.
- **No wasted output tokens.** The grammar ends decoding when the JSON object closes, so `max_tokens`
  (160) is a cap, never reached here (see completion tokens per example); lowering it would save nothing
  and would change every LLM cache key (it is an answer-affecting setting). The criteria and their keys
  are the prompt file's (`prompts/extract_criteria.yaml`), unchanged so cached evaluations stay valid.
- **Batched decoding: not used.** llama-cpp-python's `Llama` decodes one sequence (`generate` works on
  sequence 0 and truncates the KV cache for every other call); several sequences per batch exist only in
  the low-level `llama_batch` C API, where each sequence would need its own grammar sampler, sampling
  loop and KV bookkeeping written here. It would also change the floating-point reduction shapes, so
  answers could differ from the one-at-a-time answers that the cache holds; and the grammar's share of
  each call (the grammar cost ratio above) is per-sequence sampling work that batching does not amortise.
"""


def reading(result: dict[str, Any]) -> str:
    """What this run can tell apart: the steps show only where the old path falls behind raw."""
    share = result["throughput_vs_raw_grammar"]
    now, before, one_thread = share["clusterdiv"], share["clusterdiv, before"], share["clusterdiv, one thread, async litellm"]
    text = (f"Reading: clusterdiv now runs at {now:.0%} of raw, the old path at {before:.0%} in the same process "
            "(the 65% recorded at commit 9944f72, the old bench layout under that day's load, did not reappear). ")
    if now - before >= 0.05:
        text += (f"The one model thread alone, still through litellm's async path, is at {one_thread:.0%}: "
                 + ("that step closes most of the gap here. " if one_thread - before >= (now - before) / 2
                    else "the sync litellm call closes most of the gap here. "))
    else:
        text += "Both stay near raw in this run, so it shows that clusterdiv costs no more than llama.cpp, not which step closed the gap. "
    return text


def render(result: dict[str, Any]) -> str:
    rows, share = result["variants"], result["throughput_vs_raw_grammar"]
    lines = ["# Cold LLM cost: clusterdiv extraction vs raw llama.cpp (eval/bench_llm.py)", "",
             f"`{result['command'].strip()}`: {result['n']} CLINC150 texts, bundled SmolLM2-135M (Q4_1), "
             f"{result['cpu_count']} CPU threads, temperature 0, max_tokens {result['max_tokens']}; chunks of "
             f"{result['chunk']} in turn within each phase, one warm-up request per variant; load average at the "
             f"end {result['load_average_at_end']} (the machine is shared).", "",
             "| phase | variant | s / example | prompt tokens | prompt evaluated | completion tokens | "
             "decode tokens/s | answers = raw |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for phase, names in PHASES.items():
        for name in names:
            r = rows[name]
            lines.append(f"| {phase} | {name} | {r['s_per_example']:.3f} | {r['prompt_tokens']} | "
                         f"{r['prompt_tokens_evaluated']} | {r['completion_tokens']} | {r['decode_tokens_per_s']} | "
                         f"{r['answers_equal_raw']}/{result['n']} |")
    g = result["grammar_build_per_call"]
    lines += ["", "Throughput as a share of raw grammar-constrained llama.cpp in the same phase:", "",
              *[f"- {name}: {value:.0%}" for name, value in share.items()], "",
              f"Per-example cold cost: before {rows['clusterdiv, before']['s_per_example']:.3f} s "
              f"(raw in its phase {rows['raw + grammar, phase 2']['s_per_example']:.3f} s), now "
              f"{rows['clusterdiv']['s_per_example']:.3f} s (raw in its phase {rows['raw + grammar']['s_per_example']:.3f} s). "
              f"The grammar costs {result['grammar_cost_ratio']:.2f}x the free decoding's time; building it per call "
              f"would cost {g['schema_to_gbnf_ms']} ms (schema to GBNF) + {g['gbnf_to_sampler_ms']} ms (GBNF to "
              f"sampler). The local provider compiled {result['local_provider']['grammars_compiled']} grammar(s) "
              f"for {result['local_provider']['calls']} calls.", "",
              reading(result),
              "Prompt tokens evaluated vs sent: "
              f"{rows['clusterdiv']['prompt_tokens_evaluated']} of {rows['clusterdiv']['prompt_tokens']} "
              "(the rest is the shared prefix, reused from the KV cache).", "", NOTES]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=None, help="clusterdiv's LLM concurrency (default: its own)")
    parser.add_argument("--render-only", action="store_true", help="rewrite bench_llm.md from bench_llm.json")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not args.render_only:
        result = run(args)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "bench_llm.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    result = json.loads((RESULTS / "bench_llm.json").read_text(encoding="utf-8"))
    text = render(result)
    (RESULTS / "bench_llm.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
