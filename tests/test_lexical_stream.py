"""Streamed lexical metrics (issue 15.5): the same values as the in-memory path, chunk by chunk."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import clusterdiv.io.corpus._stream as stream_module
from clusterdiv.cli import app
from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus import MAX_INPUT_ENV, MAX_RECORD_ENV, load_corpus, stream_texts
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


def write_format(path, texts, fmt, bad=(), gz=False):
    """`texts` in one of the streamed formats, with rows made invalid at the indices in `bad`."""
    if fmt == "jsonl":
        lines = [("{not json" if i % 2 else json.dumps({"text": ""})) if i in bad else json.dumps({"text": t, "n": i})
                 for i, t in enumerate(texts)]
        data = "\n".join(lines) + "\n"
    elif fmt in ("csv", "tsv"):
        out = io.StringIO()
        writer = csv.writer(out, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        writer.writerow(["id", "text"])
        for i, t in enumerate(texts):
            writer.writerow([i, t, "extra"] if i in bad and i % 2 else [i, " " if i in bad else t])
        data = out.getvalue()
    else:  # plain text: a bad row is a line of invalid UTF-8 (blank lines are no rows at all)
        data = "\n".join(f"bad {i} \udcff" if i in bad else t + "\n" * (i % 10 == 0) for i, t in enumerate(texts))
    raw = data.encode("utf-8", errors="surrogateescape")
    if bad and fmt in ("csv", "tsv"):
        raw = raw.replace(texts[min(bad)].encode("utf-8"), b"\xff", 1)  # one invalid byte as well
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def multiline_texts(seed: int, n: int) -> list[str]:
    """Texts with quotes, separators and newlines inside them: what CSV quoting has to carry."""
    texts = corpus_texts(seed, n)
    for i in range(0, n, 9):
        texts[i] = texts[i] + ' "quoted", with\ta tab\nand a second line'
    return texts


STREAMED = [(fmt, gz) for fmt in ("jsonl", "csv", "tsv", "txt") for gz in (False, True)]


@pytest.mark.parametrize(("fmt", "gz"), STREAMED)
def test_every_streamed_format_gives_load_corpus_texts_and_skipped_rows(tmp_path, fmt, gz):
    texts = multiline_texts(9, 100) if fmt in ("csv", "tsv") else corpus_texts(9, 100)
    path = write_format(tmp_path / f"c.{fmt}{'.gz' if gz else ''}", texts, fmt, bad={4, 31, 32, 77}, gz=gz)
    loaded = load_corpus(path, skip_invalid=True)
    chunks = stream_texts(path, skip_invalid=True, chunk_size=7)
    got = list(chunks)
    assert all(len(c) == 7 for c in got[:-1]) and 1 <= len(got[-1]) <= 7
    assert [t for c in got for t in c] == [e.text for e in loaded.examples]
    assert chunks.n_texts == len(loaded.examples)
    assert chunks.skipped == loaded.skipped and len(chunks.skipped) >= 4
    assert chunks.text_field == loaded.text_field and chunks.format == loaded.format


ERROR_CASES = [
    ("csv", "text,text\na,b\n", {}),
    ("csv", b"te\xffxt\na\n", {}),
    ("csv", "body\na\n", {}),
    ("csv", "text\n", {}),
    ("csv", "id,text\n1,a\n2\n", {}),
    ("csv", b"text\ncaf\xe9\n", {}),
    ("csv", "prompt,text\na,b\n", {"text_field": "nope"}),
    ("csv", "text\n  \n", {"skip_invalid": True}),
    ("tsv", "a\tb\nx\ty\n", {}),
    ("txt", "\n \n\n", {}),
    ("txt", "a\n", {"text_field": "text"}),
    ("txt", b"ok\nbad \xff\n", {}),
    ("jsonl", '{"prompt": "a"}\n' * 9 + '{"instruction": "b"}\n', {}),  # ambiguity after the first chunk
    ("jsonl", '{"body": "a"}\n' * 9 + '{"text": 3}\n', {}),
    ("jsonl", '{"a": 1}\n' * 9, {"text_field": "b"}),
    ("jsonl", '[1]\n' * 9 + '"s"\n', {}),  # no record has fields
]


@pytest.mark.parametrize(("fmt", "content", "kwargs"), ERROR_CASES)
@pytest.mark.parametrize("gz", [False, True])
def test_streamed_errors_are_the_load_corpus_errors(tmp_path, fmt, content, kwargs, gz):
    raw = content if isinstance(content, bytes) else content.encode("utf-8")
    path = tmp_path / f"e.{fmt}{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(CorpusError) as expected:
        load_corpus(path, **kwargs)
    with pytest.raises(CorpusError) as streamed:
        list(stream_texts(path, chunk_size=7, **kwargs))
    assert str(streamed.value) == str(expected.value)


def test_streamed_size_limits_are_the_load_corpus_limits(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_RECORD_ENV, str(200 / 2**20))  # 200 bytes a line
    lines = [json.dumps({"text": f"t{i}"}) for i in range(50)]
    lines[20] = json.dumps({"text": "x" * 300})  # inside the file, not at a read boundary
    for gz in (False, True):
        path = tmp_path / f"long{gz}.jsonl"
        raw = "\n".join(lines).encode()
        path.write_bytes(gzip.compress(raw) if gz else raw)
        with pytest.raises(CorpusError) as expected:
            load_corpus(path)
        with pytest.raises(CorpusError) as streamed:
            list(stream_texts(path, chunk_size=7))
        assert str(streamed.value) == str(expected.value) and ":21: a line exceeds" in str(expected.value)
    monkeypatch.delenv(MAX_RECORD_ENV)
    monkeypatch.setenv(MAX_INPUT_ENV, str(1000 / 2**20))
    for name, raw in (("big.txt", b"word\n" * 400), ("bomb.txt.gz", gzip.compress(b"word\n" * 400))):
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(CorpusError) as expected:
            load_corpus(path)
        with pytest.raises(CorpusError) as streamed:
            stream_texts(path, chunk_size=7).__iter__().__next__()
        assert str(streamed.value) == str(expected.value) and "exceeds the limit of 1000 bytes" in str(expected.value)


@pytest.mark.parametrize(("fmt", "gz"), STREAMED)
def test_reader_does_not_read_past_the_chunk_it_hands_out(tmp_path, monkeypatch, fmt, gz):
    """Lines are pulled lazily: when a chunk is handed out, no line of the next text's row has been read."""
    texts = multiline_texts(7, 100) if fmt in ("csv", "tsv") else corpus_texts(7, 100)
    path = write_format(tmp_path / f"c.{fmt}{'.gz' if gz else ''}", texts, fmt, bad={12, 13, 50}, gz=gz)
    starts = [e.source_line for e in load_corpus(path, skip_invalid=True).examples]
    read = {"lines": 0}
    real_lines = stream_module.file_lines

    def counting_lines(p, shown):
        for line in real_lines(p, shown):
            read["lines"] = line[0]
            yield line

    monkeypatch.setattr(stream_module, "file_lines", counting_lines)
    handed_out = 0
    for chunk in stream_texts(path, chunk_size=7, skip_invalid=True):
        handed_out += len(chunk)
        if handed_out < len(starts):
            assert read["lines"] < starts[handed_out]  # the next chunk's first row is still unread
        assert len(chunk) <= 7
    assert handed_out == len(starts) and read["lines"] >= starts[-1]


def test_jsonl_is_parsed_once_when_the_first_chunk_or_a_byte_scan_settles_the_field(tmp_path, monkeypatch):
    parsed: list[int] = []
    real_row = stream_module.jsonl_row

    def counting_row(number, line, error):
        parsed.append(number)
        return real_row(number, line, error)

    monkeypatch.setattr(stream_module, "jsonl_row", counting_row)
    texts = corpus_texts(11, 60)
    for field in ("text", "prompt"):  # settled by the first chunk; by a scan that parses no line
        path = tmp_path / f"{field}.jsonl"
        path.write_text("".join(json.dumps({field: t, "id": i}) + "\n" for i, t in enumerate(texts)))
        parsed.clear()
        got = [t for c in stream_texts(path, chunk_size=7) for t in c]
        assert got == [e.text for e in load_corpus(path).examples]
        assert sorted(parsed) == list(range(1, 61))  # each line parsed exactly once
    # `text` appears only after the first chunk (literally, or spelled with an escape the byte scan
    # must not miss): load_corpus chooses `text`, and so must the stream
    lines = [json.dumps({"prompt": t}) for t in texts[:20]] + [json.dumps({"text": t}) for t in texts[20:]]
    escaped = [json.dumps({"prompt": t}) for t in texts]
    escaped[30] = '{"\\u0074ext": "escaped key", "prompt": "p"}'
    for name, content in (("late", lines), ("escaped", escaped)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(content) + "\n")
        expected = load_corpus(path, skip_invalid=True)
        assert expected.text_field == "text"
        chunks = stream_texts(path, chunk_size=7, skip_invalid=True)
        assert [t for c in chunks for t in c] == [e.text for e in expected.examples]
        assert chunks.skipped == expected.skipped and chunks.text_field == "text"
        with pytest.raises(CorpusError) as want:
            load_corpus(path)
        with pytest.raises(CorpusError) as got_error:
            list(stream_texts(path, chunk_size=7))
        assert str(got_error.value) == str(want.value)


@pytest.mark.parametrize("fmt", ["csv", "txt", "jsonl"])
def test_stdin_streams_the_same_texts(tmp_path, monkeypatch, fmt):
    texts = multiline_texts(12, 40) if fmt == "csv" else corpus_texts(12, 40)
    path = write_format(tmp_path / f"c.{fmt}", texts, fmt, bad={3})
    expected = load_corpus(path, skip_invalid=True)
    for raw in (path.read_bytes(), gzip.compress(path.read_bytes())):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
        chunks = stream_texts("-", format=fmt, skip_invalid=True, chunk_size=7)
        assert [t for c in chunks for t in c] == [e.text for e in expected.examples]
        assert chunks.skipped == expected.skipped and chunks.path == "<stdin>"


def _streamed_metrics_cli(path, monkeypatch):
    """`metrics --metrics lexical` on `path` with 7-text chunks; the chunk sizes the stream was fed."""
    monkeypatch.setattr(stream_module, "DEFAULT_CHUNK", 7)
    seen: list[int] = []
    real_add = LexicalStream.add

    def spy_add(self, chunk):
        seen.append(len(chunk))
        return real_add(self, chunk)

    monkeypatch.setattr(LexicalStream, "add", spy_add)
    result = CliRunner().invoke(app, ["metrics", str(path), "--metrics", "lexical", "--format", "json",
                                      "--skip-invalid", "--self-bleu-sample", "30"])
    return seen, result


def test_cli_metrics_lexical_streams_with_the_same_output(tmp_path, monkeypatch):
    texts = corpus_texts(8, 150)
    path = tmp_path / "c.jsonl"
    write_jsonl(path, texts, bad_lines={5})
    seen, result = _streamed_metrics_cli(path, monkeypatch)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert max(seen) == 7 and sum(seen) == 150  # it did stream
    assert payload["n_samples"] == 150 and payload["skipped"] == 1
    expected = compute_set_metrics(texts, select="lexical", seed=0, self_bleu_sample=30)
    for name, value in expected.items():
        assert payload["metrics"][name]["value"] == value.value
    bad = CliRunner().invoke(app, ["metrics", str(path), "--metrics", "lexical"])
    assert bad.exit_code == 2


def test_cli_metrics_lexical_on_csv_streams_the_in_memory_values(tmp_path, monkeypatch):
    texts = multiline_texts(13, 150)
    path = write_format(tmp_path / "c.csv", texts, "csv", bad={5, 6})
    seen, result = _streamed_metrics_cli(path, monkeypatch)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    loaded = load_corpus(path, skip_invalid=True)
    assert max(seen) == 7 and sum(seen) == len(loaded.examples) == payload["n_samples"]  # it did stream
    assert payload["skipped_rows"] == [s.model_dump() for s in loaded.skipped] and payload["skipped"] == 2
    expected = compute_set_metrics([e.text for e in loaded.examples], select="lexical", seed=0, self_bleu_sample=30)
    for name, value in expected.items():
        assert payload["metrics"][name]["value"] == value.value, name
