"""Cache keys: everything that can change an answer invalidates it; nothing else does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.prompts import PromptTemplate, prompts_dir
from clusterdiv.llm.structured import LLMSettings, llm_cache_key
from clusterdiv.modes.embed import embed_texts, embedding_cache_key


def _key(prompt: PromptTemplate, text: str = "hello", **settings) -> str:
    return llm_cache_key(prompt, {"text": text}, prompt.output_model, settings=LLMSettings(**settings))


def test_same_input_same_key():
    prompt = PromptTemplate.load()
    assert _key(prompt) == _key(PromptTemplate.load())


def test_text_model_params_change_the_key():
    prompt = PromptTemplate.load()
    base = _key(prompt, model="fake/echo")
    assert _key(prompt, "hello!", model="fake/echo") != base
    assert _key(prompt, model="fake/junk") != base
    assert _key(prompt, model="fake/echo", temperature=0.7) != base
    assert _key(prompt, model="fake/echo", seed=1) != base
    assert _key(prompt, model="fake/echo", max_tokens=100) != base


def test_concurrency_and_retries_do_not_change_the_key():
    prompt = PromptTemplate.load()
    base = _key(prompt, model="fake/echo")
    assert _key(prompt, model="fake/echo", concurrency=32, max_attempts=7, timeout=5) == base


def test_prompt_content_not_file_name_is_the_identity(tmp_path: Path):
    original = (prompts_dir() / "extract_criteria.yaml").read_text()
    same = tmp_path / "renamed.yaml"
    same.write_text(original)
    edited = tmp_path / "extract_criteria.yaml"
    edited.write_text(original.replace("You label one message at a time.", "You label one message."))
    bundled = PromptTemplate.load()
    assert _key(PromptTemplate.load(same)) == _key(bundled)
    assert _key(PromptTemplate.load(edited)) != _key(bundled)


def test_local_model_identity_includes_weights_hash():
    from clusterdiv.llm.local import SMOLLM2_SHA256
    from clusterdiv.llm.plugins import get_registry

    assert get_registry().fingerprint("local/smollm2") == f"local/smollm2@sha256:{SMOLLM2_SHA256}"


def test_embeddings_are_cached_per_text_and_bit_identical(cache: ModelCache, embedder):
    texts = ["set an alarm", "play jazz", "set an alarm"]
    before = embedder.calls
    first = embed_texts(texts, model=embedder, cache=cache)
    assert embedder.calls - before == 2  # duplicate text encoded once
    again = embed_texts(texts, model=embedder, cache=cache)
    assert embedder.calls - before == 2  # nothing recomputed
    assert first.tobytes() == again.tobytes()
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert embedding_cache_key("a", model=embedder) != embedding_cache_key("b", model=embedder)
    assert embedder.spec.weights_sha256 in embedder.spec.fingerprint


def test_cache_info_and_clear(cache: ModelCache, embedder):
    embed_texts(["one", "two"], model=embedder, cache=cache)
    info = cache.info()
    assert info["entries_by_kind"] == {"embedding": 2} and info["size_bytes"] > 0
    assert cache.clear() == 2 and cache.info()["entries"] == 0
