"""Streamed lexical metrics (issue 15.5): the same values as the in-memory path, chunk by chunk."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import clusterdiv.io.corpus._stream as stream_module
from clusterdiv.cli import app
from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus import load_corpus, stream_texts
from clusterdiv.metrics.lexical import GZIP_LEVEL, LexicalStream, compression_ratio
from clusterdiv.metrics.registry import compute_lexical_metrics, compute_set_metrics


def corpus_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(30)] + ["le chat", "猫が好き", "Привет"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(n)]
    for i in rng.sample(range(n), n // 5):  # exact duplicates, what distinct-n and self-BLEU react to
        texts[i] = texts[rng.randrange(n)]
    return texts


def chunks_of(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def assert_same_metrics(streamed: dict, in_memory: dict) -> None:
    assert list(streamed) == list(in_memory)
    for name, value in in_memory.items():
        got = streamed[name]
        assert got.value == value.value, name  # exact, not approximately
        assert got.details == value.details, name
        if value.ci95 is None:
            assert got.ci95 is None, name
        else:  # the jackknife sums are merged over chunks: equal up to float rounding
            np.testing.assert_allclose(got.ci95, value.ci95, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_streamed_metrics_equal_in_memory(chunk):
    texts = corpus_texts(0, 300)
    expected = compute_set_metrics(texts, select="lexical", seed=3, self_bleu_sample=40)
    streamed = compute_lexical_metrics(chunks_of(texts, chunk), seed=3, self_bleu_sample=40)
    assert_same_metrics(streamed, expected)
    assert expected["compression_ratio"].ci95 is not None  # the interval path is exercised too
    full = compute_lexical_metrics(chunks_of(texts, chunk), select="self_bleu")
    assert full["self_bleu"].value == compute_set_metrics(texts, select="self_bleu")["self_bleu"].value


def test_streamed_metrics_refuse_non_lexical_metrics():
    with pytest.raises(ValueError, match="vendi"):
        compute_lexical_metrics([["a b"]], select="lexical,vendi")


def test_streamed_compression_equals_one_gzip_of_the_joined_corpus():
    rng = random.Random(1)
    texts = corpus_texts(2, 2000)
    raw = "\n".join(texts).encode("utf-8")
    expected = len(gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)) / len(raw)
    assert compression_ratio(texts) == expected
    for _ in range(5):
        stream = LexicalStream(spill=False)
        i = 0
        while i < len(texts):
            step = rng.randint(1, 300)
            stream.add_raw(texts[i : i + step])
            i += step
        assert stream.compression_ratio() == expected


def test_stream_spills_token_ids_and_keeps_no_chunk():
    texts = corpus_texts(4, 100)
    with LexicalStream(orders=4) as stream:
        for part in chunks_of(texts, 7):
            stream.add(part)
        assert stream._chunks == []  # token ids went to the temporary file
        assert stream.n_texts == 100
        assert stream.distinct(2) == compute_set_metrics(texts, select="distinct_2")["distinct_2"].value


def write_jsonl(path, texts, bad_lines=()):
    with path.open("w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            if i in bad_lines:
                fh.write("{not json\n" if i % 2 else json.dumps({"text": ""}) + "\n")
            fh.write(json.dumps({"text": text, "n": i}) + "\n")


def test_jsonl_chunks_equal_load_corpus_with_skipped_rows(tmp_path):
    texts = corpus_texts(5, 120)
    path = tmp_path / "c.jsonl"
    write_jsonl(path, texts, bad_lines={3, 40, 41, 99})
    loaded = load_corpus(path, skip_invalid=True)
    chunks = stream_texts(path, skip_invalid=True, chunk_size=7)
    got = list(chunks)
    assert all(len(c) == 7 for c in got[:-1]) and 1 <= len(got[-1]) <= 7
    assert [t for c in got for t in c] == [e.text for e in loaded.examples]
    assert chunks.n_texts == len(loaded.examples) == 120
    assert chunks.skipped == loaded.skipped and len(chunks.skipped) == 4


def test_parquet_chunks_equal_load_corpus_with_skipped_rows(tmp_path):
    texts: list[str | None] = list(corpus_texts(6, 90))
    texts[10] = None
    texts[50] = "   "
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": list(range(90)), "text": texts}), path, row_group_size=13)
    loaded = load_corpus(path, skip_invalid=True)
    chunks = stream_texts(path, skip_invalid=True, chunk_size=7)
    assert [t for c in chunks for t in c] == [e.text for e in loaded.examples]
    assert chunks.skipped == loaded.skipped and len(chunks.skipped) == 2


@pytest.mark.parametrize(
    ("content", "kwargs"),
    [
        ('{"text": "a"}\n{bad\n', {}),
        ('{"text": "a"}\n{"text": 3}\n', {}),
        ('{"prompt": "a"}\n{"text": "b"}\n', {}),  # two candidate fields, the second only on line 2
        ('{"body": "a"}\n', {}),
        ('{"text": "a"}\n', {"text_field": "nope"}),
        ("\n\n", {}),
        ('{"text": ""}\n', {"skip_invalid": True}),
        (b'{"text": "caf\xe9"}\n', {}),
    ],
)
def test_jsonl_errors_are_the_load_corpus_errors(tmp_path, content, kwargs):
    path = tmp_path / "e.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError) as expected:
        load_corpus(path, **kwargs)
    with pytest.raises(CorpusError) as streamed:
        list(stream_texts(path, chunk_size=1, **kwargs))
    assert str(streamed.value) == str(expected.value)


def test_reader_holds_at_most_one_chunk(tmp_path, monkeypatch):
    """The rows are pulled lazily: when a chunk is handed out, no row past it has been read."""
    texts = corpus_texts(7, 100)
    path = tmp_path / "c.jsonl"
    write_jsonl(path, texts)
    pulled = {"rows": 0}
    real_rows = stream_module._jsonl_rows

    def counting_rows(p, shown):
        for row in real_rows(p, shown):
            pulled["rows"] += 1
            yield row

    monkeypatch.setattr(stream_module, "_jsonl_rows", counting_rows)
    chunks = stream_texts(path, chunk_size=7)
    pulled["rows"] = 0  # the first pass (field names) is over; count the second
    handed_out = 0
    for chunk in chunks:
        handed_out += len(chunk)
        assert pulled["rows"] == handed_out  # nothing read ahead of the chunk being handed out
        assert len(chunk) <= 7
    assert handed_out == 100


def test_cli_metrics_lexical_streams_with_the_same_output(tmp_path, monkeypatch):
    texts = corpus_texts(8, 150)
    path = tmp_path / "c.jsonl"
    write_jsonl(path, texts, bad_lines={5})
    monkeypatch.setattr(stream_module, "DEFAULT_CHUNK", 7)
    seen: list[int] = []
    real_add = LexicalStream.add

    def spy_add(self, chunk):
        seen.append(len(chunk))
        return real_add(self, chunk)

    monkeypatch.setattr(LexicalStream, "add", spy_add)
    result = CliRunner().invoke(app, ["metrics", str(path), "--metrics", "lexical", "--format", "json",
                                      "--skip-invalid", "--self-bleu-sample", "30"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert max(seen) == 7 and sum(seen) == 150  # it did stream
    assert payload["n_samples"] == 150 and payload["skipped"] == 1
    expected = compute_set_metrics(texts, select="lexical", seed=0, self_bleu_sample=30)
    for name, value in expected.items():
        assert payload["metrics"][name]["value"] == value.value
    bad = CliRunner().invoke(app, ["metrics", str(path), "--metrics", "lexical"])
    assert bad.exit_code == 2
