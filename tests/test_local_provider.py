"""How the in-process local provider is called: one model thread, sync litellm, one grammar per schema.

No model is loaded: the llama.cpp context is replaced by a stub that records how it was asked, so these
tests pin the calling path the cold benchmark (eval/bench_llm.py) measured, in well under a second.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from clusterdiv.core.prompts import PromptTemplate
from clusterdiv.llm.plugins import get_registry
from clusterdiv.llm.structured import CallStats, LLMSettings, agenerate_structured


class StubLlama:
    """Answers like llama-cpp-python's `create_chat_completion` and records each request and its thread."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, dict[str, Any]]] = []

    def create_chat_completion(self, **request: Any) -> dict[str, Any]:
        self.requests.append((threading.get_ident(), request))
        content = json.dumps({"intent": "set alarm", "topic": "alarm", "task": "command", "style": "casual"})
        return {"choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}}


@pytest.fixture
def stub_provider(monkeypatch: pytest.MonkeyPatch):
    from clusterdiv.llm.local import LocalLlamaProvider

    provider = LocalLlamaProvider()
    llama = StubLlama()
    monkeypatch.setattr(provider, "_llama", lambda name: llama)
    get_registry().register_llm_provider("localstub", provider)
    yield provider, llama
    provider.close()


def ask(prompt: PromptTemplate, text: str, model: str, cache: Any, stats: CallStats) -> Any:
    return asyncio.run(agenerate_structured(prompt, {"text": text}, prompt.output_model,
                                            model=LLMSettings(model=model), cache=cache, stats=stats))


def test_local_calls_run_on_the_provider_thread_through_sync_litellm(stub_provider, cache, monkeypatch):
    import litellm

    provider, llama = stub_provider
    prompt = PromptTemplate.load()

    async def no_async_path(**kwargs: Any) -> Any:
        raise AssertionError("the in-process provider must not go through litellm.acompletion")

    monkeypatch.setattr(litellm, "acompletion", no_async_path)
    stats = CallStats()
    outcomes = [ask(prompt, text, "localstub/smollm2", cache, stats) for text in ("wake me at 6", "alarm at 7")]

    assert all(o.ok and not o.cached for o in outcomes) and stats.calls == 2
    assert (stats.prompt_tokens, stats.completion_tokens) == (80, 24)  # usage comes back through litellm
    threads = {ident for ident, _ in llama.requests}
    assert len(llama.requests) == 2 and threads == {provider._pool_thread}
    assert threading.get_ident() not in threads


def test_every_entry_point_uses_one_thread_and_one_grammar_per_schema(stub_provider):
    """litellm.completion from the caller's thread and litellm.acompletion (a new event loop each time)
    end on the same model thread: llama.cpp keeps an OpenMP team per calling thread."""
    import litellm
    from llama_cpp.llama_grammar import LlamaGrammar

    provider, llama = stub_provider
    prompt = PromptTemplate.load()
    schema = prompt.output_model.model_json_schema()
    request = {"model": "localstub/smollm2", "messages": prompt.messages(text="set an alarm"), "max_tokens": 160,
               "response_format": {"type": "json_object", "schema": schema}}
    litellm.completion(**request)
    for _ in range(2):
        asyncio.run(litellm.acompletion(**request))

    assert len(llama.requests) == 3 and {ident for ident, _ in llama.requests} == {provider._pool_thread}
    grammars = [sent["grammar"] for _, sent in llama.requests]
    assert provider.grammars_compiled == 1 and all(g is grammars[0] for g in grammars)
    assert all("response_format" not in sent for _, sent in llama.requests)
    # the very grammar llama-cpp-python builds from response_format itself, so the answers are the same
    assert grammars[0]._grammar == LlamaGrammar.from_json_schema(json.dumps(schema))._grammar
    assert [sent["max_tokens"] for _, sent in llama.requests] == [160] * 3


def load_recorded(monkeypatch: pytest.MonkeyPatch, record: Callable[[dict[str, Any]], None], loads: int = 1) -> None:
    """Ask a fresh provider for the bundled model `loads` times; llama.cpp's class only records its kwargs."""
    import llama_cpp

    from clusterdiv.llm.local import LocalLlamaProvider

    class RecordingLlama:
        def __init__(self, **kwargs: Any) -> None:
            record(kwargs)

        def close(self) -> None:
            pass

    monkeypatch.setattr(llama_cpp, "Llama", RecordingLlama)
    provider = LocalLlamaProvider()
    try:
        for _ in range(loads):
            provider._llama("smollm2")
    finally:
        provider.close()


def test_the_model_loads_without_extra_buffer_types(monkeypatch):
    """AMX builds of llama.cpp segfault on the bundled Q4_1 model (ggml-org/llama.cpp#20824): the
    provider loads it with `use_extra_bufts` off, and leaves llama.cpp's defaults as they were."""
    import llama_cpp.llama_cpp as bindings

    seen: list[bool] = []  # what Llama.__init__ starts from
    load_recorded(monkeypatch, lambda kwargs: seen.append(bindings.llama_model_default_params().use_extra_bufts),
                  loads=2)
    assert seen == [False]  # loaded once
    assert bindings.llama_model_default_params().use_extra_bufts is True


AFFINITY = {0, 1, 2, 3, 4}  # the CPUs the test pretends this process may run on


@pytest.mark.parametrize(("omp", "expected"), [("1", 1), ("3", 3), ("2,1", 2), (None, len(AFFINITY)),
                                               ("", len(AFFINITY)), ("0", len(AFFINITY)), ("many", len(AFFINITY))])
def test_llama_cpp_takes_the_threads_omp_num_threads_grants(monkeypatch, omp, expected):
    """A Ray actor (OMP_NUM_THREADS = its num_cpus) or an xdist worker must not spin on every core:
    two processes that each took all of them ran 4x slower each (eval/bench_llm_threads.py)."""
    from clusterdiv.llm.local import LocalLlamaProvider

    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: AFFINITY)
    threads: list[tuple[int, int]] = []
    load_recorded(monkeypatch, lambda kwargs: threads.append((kwargs["n_threads"], kwargs["n_threads_batch"])))
    assert threads == [(expected, expected)]  # prompt evaluation too: llama-cpp-python would take every CPU for it
    assert LocalLlamaProvider(n_threads=7).n_threads == 7  # an explicit count wins
