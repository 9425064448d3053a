"""Tests for corpus loading: formats, field detection, ids, errors with line numbers, skipping."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import time
from pathlib import Path

import pytest

from clusterdiv.core.errors import CorpusError, InputError
from clusterdiv.core.records import Example
from clusterdiv.io.corpus import LoadedCorpus, SkippedRow, examples_from_texts, load_corpus

RECORDS: list[dict[str, object]] = [
    {"id": "a1", "text": "How do I sort a list in Python?", "label": "code", "source": "seed"},
    {"id": "a2", "text": "Write a haiku about autumn.", "label": "poetry", "source": "gen"},
    {"id": "a3", "text": 'Explain, in one line, what "entropy" means.', "label": "science", "source": "gen"},
]
TEXTS = [str(r["text"]) for r in RECORDS]


# --------------------------------------------------------------------------------------------------
# fixture writers


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_csv(path: Path, records: list[dict[str, object]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(records)
    return path


def write_parquet(path: Path, records: list[dict[str, object]]) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def save_hf(path: Path, records: list[dict[str, object]]) -> Path:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path


def make_source(kind: str, tmp_path: Path) -> Path:
    if kind == "jsonl":
        return write_jsonl(tmp_path / "c.jsonl", RECORDS)
    if kind == "ndjson":
        return write_jsonl(tmp_path / "c.ndjson", RECORDS)
    if kind == "jsonl.gz":
        path = tmp_path / "c.jsonl.gz"
        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in RECORDS).encode()))
        return path
    if kind == "json":
        path = tmp_path / "c.json"
        path.write_text(json.dumps(RECORDS, indent=2), encoding="utf-8")
        return path
    if kind == "json-wrapped":
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"data": RECORDS}, indent=2), encoding="utf-8")
        return path
    if kind == "csv":
        return write_csv(tmp_path / "c.csv", RECORDS)
    if kind == "tsv":
        return write_csv(tmp_path / "c.tsv", RECORDS, delimiter="\t")
    if kind == "parquet":
        return write_parquet(tmp_path / "c.parquet", RECORDS)
    if kind == "hf_dataset":
        return save_hf(tmp_path / "ds", RECORDS)
    raise AssertionError(kind)


EXPECTED_FORMAT = {
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "jsonl.gz": "jsonl",
    "json": "json",
    "json-wrapped": "json",
    "csv": "csv",
    "tsv": "csv",
    "parquet": "parquet",
    "hf_dataset": "hf_dataset",
}


def error_of(path: Path, **kwargs: object) -> CorpusError:
    with pytest.raises(CorpusError) as info:
        load_corpus(path, **kwargs)  # type: ignore[arg-type]
    return info.value


# --------------------------------------------------------------------------------------------------
# formats


@pytest.mark.parametrize("kind", list(EXPECTED_FORMAT))
def test_every_format_loads_the_same_examples(kind: str, tmp_path: Path) -> None:
    path = make_source(kind, tmp_path)
    corpus = load_corpus(path, id_field="id", label_field="label")
    assert isinstance(corpus, LoadedCorpus)
    assert corpus.format == EXPECTED_FORMAT[kind]
    assert corpus.text_field == "text"
    assert corpus.path == str(path)
    assert [e.text for e in corpus.examples] == TEXTS
    assert [e.id for e in corpus.examples] == ["a1", "a2", "a3"]
    assert [e.label for e in corpus.examples] == ["code", "poetry", "science"]
    assert [e.meta for e in corpus.examples] == [{"source": "seed"}, {"source": "gen"}, {"source": "gen"}]
    assert corpus.skipped == []


@pytest.mark.parametrize("kind", list(EXPECTED_FORMAT))
def test_content_hash_is_the_same_across_formats(kind: str, tmp_path: Path) -> None:
    (tmp_path / "ref").mkdir()
    reference = load_corpus(make_source("jsonl", tmp_path / "ref"))
    corpus = load_corpus(make_source(kind, tmp_path))
    assert corpus.content_hash == reference.content_hash
    assert [e.id for e in corpus.examples] == [e.id for e in reference.examples]


def test_source_lines_follow_the_file(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('\n{"text": "one"}\n\n   \n{"text": "two"}\n', encoding="utf-8")
    assert [e.source_line for e in load_corpus(jsonl).examples] == [2, 5]

    pretty = load_corpus(make_source("json", tmp_path))
    lines = (tmp_path / "c.json").read_text().splitlines()
    for example in pretty.examples:  # each item's line is where its object opens
        assert lines[example.source_line - 1].strip() == "{"  # type: ignore[operator]
        assert example.text.replace('"', '\\"') in "\n".join(lines[example.source_line - 1 :])  # type: ignore[operator]

    assert [e.source_line for e in load_corpus(make_source("csv", tmp_path)).examples] == [2, 3, 4]
    assert [e.source_line for e in load_corpus(make_source("parquet", tmp_path)).examples] == [1, 2, 3]


def test_csv_quoted_multiline_field_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('text,label\n"first\nspans two lines",x\nsecond,y\n"third",\n', encoding="utf-8")
    corpus = load_corpus(path, label_field="label")
    assert [e.text for e in corpus.examples] == ["first\nspans two lines", "second", "third"]
    assert [e.source_line for e in corpus.examples] == [2, 4, 5]
    assert [e.label for e in corpus.examples] == ["x", "y", None]  # empty cell means no label


def test_csv_with_bom_and_long_field(tmp_path: Path) -> None:
    long_text = "word " * 40_000  # longer than csv's default 128 KiB field limit
    path = tmp_path / "c.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"text\nshort\n{long_text}\n".encode())
    corpus = load_corpus(path)
    assert corpus.text_field == "text"  # the BOM did not become part of the column name
    assert [len(e.text) for e in corpus.examples] == [5, len(long_text)]


def test_plain_text_one_example_per_non_empty_line(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"first line\r\n\r\n  \nsecond line\nthird\n\n")
    corpus = load_corpus(path)
    assert corpus.format == "text"
    assert corpus.text_field is None
    assert [e.text for e in corpus.examples] == ["first line", "second line", "third"]
    assert [e.source_line for e in corpus.examples] == [1, 4, 5]
    assert [e.id for e in corpus.examples] == [
        e.id for e in examples_from_texts(["first line", "second line", "third"])
    ]


def test_json_array_of_strings(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(TEXTS), encoding="utf-8")
    corpus = load_corpus(path)
    assert corpus.text_field is None
    assert [e.text for e in corpus.examples] == TEXTS
    records = write_jsonl(tmp_path / "texts.jsonl", [{"text": t} for t in TEXTS])  # no `id`: content ids too
    assert corpus.content_hash == load_corpus(records).content_hash


def test_plain_strings_reject_field_options(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.txt", ["a", "b"])
    err = error_of(path, text_field="text")
    assert "--text-field" in str(err) and str(path) in str(err)


def test_json_with_several_top_level_keys_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": RECORDS, "test": RECORDS}), encoding="utf-8")
    err = error_of(path)
    assert "more than one key" in str(err)
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"text": "just one record"}), encoding="utf-8")
    assert "expected a JSON array" in str(error_of(single))


def test_format_override_and_gzip_by_content(tmp_path: Path) -> None:
    path = tmp_path / "export.data"
    path.write_bytes(gzip.compress(b'{"text": "hello"}\n{"text": "world"}\n'))
    assert "--input-format" in str(error_of(path))
    corpus = load_corpus(path, format="jsonl")
    assert corpus.format == "jsonl"
    assert [e.text for e in corpus.examples] == ["hello", "world"]
    assert load_corpus(path, format="ndjson").format == "jsonl"  # alias
    assert "unknown format" in str(error_of(path, format="xml"))


def test_missing_path_and_plain_directory(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.jsonl")
    assert str(tmp_path / "nope.jsonl") in str(err) and "no such file" in str(err)
    assert err.exit_code == 2 and isinstance(err, InputError)
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "save_to_disk" in str(error_of(folder))
    assert "is a directory" in str(error_of(folder, format="jsonl"))
    assert "expects a directory" in str(error_of(make_source("jsonl", tmp_path), format="hf_dataset"))


# --------------------------------------------------------------------------------------------------
# Hugging Face datasets and Parquet


def test_hf_dataset_round_trip(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    records = [
        {"prompt": f"prompt {i}", "round": i % 2, "parent_ids": [i - 1] if i else []} for i in range(5)
    ]
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "ds"))
    corpus = load_corpus(tmp_path / "ds")
    assert corpus.format == "hf_dataset"
    assert corpus.text_field == "prompt"
    assert [e.text for e in corpus.examples] == [r["prompt"] for r in records]
    assert corpus.examples[3].meta == {"round": 1, "parent_ids": [2]}
    assert corpus.content_hash == load_corpus(tmp_path / "ds").content_hash


def test_hf_dataset_dict_needs_a_split(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    train = datasets.Dataset.from_list([{"text": "t1"}, {"text": "t2"}])
    test = datasets.Dataset.from_list([{"text": "e1"}])
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dd"))
    err = error_of(tmp_path / "dd")
    assert "train" in str(err) and "test" in str(err) and str(tmp_path / "dd") in str(err)
    assert [e.text for e in load_corpus(tmp_path / "dd" / "test").examples] == ["e1"]  # path/split

    datasets.DatasetDict({"train": train}).save_to_disk(str(tmp_path / "one"))
    assert [e.text for e in load_corpus(tmp_path / "one").examples] == ["t1", "t2"]


def test_parquet_round_trip_with_typed_meta(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    when = dt.datetime(2024, 5, 1, 12, 30)
    records = [
        {"text": "alpha", "score": 0.5, "created": when, "tags": ["x", "y"], "blob": b"\x00\x01"},
        {"text": "beta", "score": float("nan"), "created": when, "tags": [], "blob": b""},
    ]
    path = write_parquet(tmp_path / "c.parquet", records)
    corpus = load_corpus(path)
    assert corpus.format == "parquet"
    assert [e.text for e in corpus.examples] == ["alpha", "beta"]
    first, second = (e.meta for e in corpus.examples)
    assert first == {"score": 0.5, "created": when.isoformat(), "tags": ["x", "y"]}  # bytes dropped
    assert second["score"] is None  # NaN is not JSON
    json.dumps([e.meta for e in corpus.examples], allow_nan=False)  # meta is strict JSON


def test_parquet_non_string_text_and_corrupt_file(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "c.parquet", [{"text": "fine"}, {"text": None}])
    err = error_of(path)
    assert str(err).startswith(f"{path}:2: ") and "null" in str(err)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    err = error_of(broken)
    assert "Parquet" in str(err) and "\n" not in str(err)


# --------------------------------------------------------------------------------------------------
# text field detection


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["prompt", "response"], "prompt"),
        (["instruction", "output"], "instruction"),
        (["input", "target"], "input"),
        (["text", "prompt", "instruction"], "text"),  # `text` wins when present
    ],
)
def test_text_field_auto_detection(fields: list[str], expected: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{f: f"{f} value {i}" for f in fields} for i in range(2)])
    corpus = load_corpus(path)
    assert corpus.text_field == expected
    assert corpus.examples[0].text == f"{expected} value 0"
    assert expected not in corpus.examples[0].meta
    assert set(corpus.examples[0].meta) == set(fields) - {expected}


def test_ambiguous_text_field_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"instruction": "do x", "input": "data", "output": "y"}])
    message = str(error_of(path))
    assert message.startswith(f"{path}: ")
    assert "instruction" in message and "input" in message and "--text-field" in message
    assert "output" in message  # available fields are listed


def test_ambiguity_considers_all_records(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "a"}, {"instruction": "b"}])
    assert "several possible text fields" in str(error_of(path))


def test_no_candidate_field_lists_available_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"question": "why?", "answer": "because"}])
    message = str(error_of(path))
    assert "question" in message and "answer" in message and "--text-field" in message
    assert load_corpus(path, text_field="question").examples[0].text == "why?"


def test_explicit_text_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "ignored", "body": "used"}])
    corpus = load_corpus(path, text_field="body")
    assert corpus.text_field == "body"
    assert corpus.examples[0].text == "used"
    assert corpus.examples[0].meta == {"text": "ignored"}
    err = error_of(path, text_field="missing")
    assert "'missing' not found" in str(err) and "body" in str(err)


def test_chat_messages_join_user_turns(tmp_path: Path) -> None:
    records = [
        {
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [{"type": "text", "text": "tell me a joke"}]},
            ]
        },
        {"messages": [{"role": "assistant", "content": "only me"}]},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", records)
    corpus = load_corpus(path, text_field="messages", skip_invalid=True)
    assert [e.text for e in corpus.examples] == ["hi\n\ntell me a joke"]
    assert corpus.skipped == [SkippedRow(line=2, reason="chat field 'messages' has no user turn with text")]


# --------------------------------------------------------------------------------------------------
# ids and labels


def test_id_field_values_are_strings(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "a", "uid": 7}, {"text": "b", "uid": "x-8"}])
    corpus = load_corpus(path, id_field="uid")
    assert [e.id for e in corpus.examples] == ["7", "x-8"]
    assert all("uid" not in e.meta for e in corpus.examples)


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl", [{"text": "a", "id": "k"}, {"text": "b", "id": "j"}, {"text": "c", "id": "k"}]
    )
    err = error_of(path, id_field="id")
    assert err.line == 3
    assert str(err) == f"{path}:3: duplicate id 'k' (first on line 1)"
    corpus = load_corpus(path, id_field="id", skip_invalid=True)
    assert [e.text for e in corpus.examples] == ["a", "b"]  # first occurrence kept
    assert corpus.skipped[0].line == 3


def test_missing_and_invalid_ids(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl", [{"text": "a", "id": "1"}, {"text": "b"}, {"text": "c", "id": [1]}]
    )
    assert str(error_of(path, id_field="id")) == f"{path}:2: missing id field 'id'"
    corpus = load_corpus(path, id_field="id", skip_invalid=True)
    assert [(s.line, s.reason) for s in corpus.skipped] == [
        (2, "missing id field 'id'"),
        (3, "id field 'id' is an array, expected a string or integer"),
    ]
    assert "--id-field 'uid' not found" in str(error_of(path, id_field="uid"))


def test_content_ids_are_stable_and_unique_with_duplicate_texts(tmp_path: Path) -> None:
    texts = ["same", "other", "same", "same", "other"]
    path = write_lines(tmp_path / "c.txt", texts)
    first = load_corpus(path)
    second = load_corpus(path)
    ids = [e.id for e in first.examples]
    assert ids == [e.id for e in second.examples]
    assert len(set(ids)) == len(ids)  # duplicates are kept, and still distinct
    base_same, base_other = Example.from_text("same").id, Example.from_text("other").id
    assert ids == [base_same, base_other, f"{base_same}-2", f"{base_same}-3", f"{base_other}-2"]
    assert ids == [e.id for e in examples_from_texts(texts)]


def test_content_ids_do_not_depend_on_skipped_rows(tmp_path: Path) -> None:
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"text": "x"}, {"text": "x"}])
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text('{"text": "x"}\n{"text": ""}\n{"text": "x"}\n', encoding="utf-8")
    corpus = load_corpus(dirty, skip_invalid=True)
    assert [e.id for e in corpus.examples] == [e.id for e in load_corpus(clean).examples]


def test_label_field(tmp_path: Path) -> None:
    records = [
        {"text": "a", "cat": "x"},
        {"text": "b", "cat": 3},
        {"text": "c", "cat": None},
        {"text": "d", "cat": True},
    ]
    corpus = load_corpus(write_jsonl(tmp_path / "c.jsonl", records), label_field="cat")
    assert [e.label for e in corpus.examples] == ["x", "3", None, "true"]
    assert all("cat" not in e.meta for e in corpus.examples)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "a", "cat": {"x": 1}}])
    assert "label field 'cat' is an object" in str(error_of(bad, label_field="cat"))
    assert "--label-field 'nope' not found" in str(error_of(bad, label_field="nope"))


def test_meta_keeps_lineage_fields(tmp_path: Path) -> None:
    record = {"text": "t", "parent_ids": ["p1", "p2"], "round": 2, "source": "evol", "extra": {"k": None}}
    corpus = load_corpus(write_jsonl(tmp_path / "c.jsonl", [record]))
    assert corpus.examples[0].meta == {
        "parent_ids": ["p1", "p2"],
        "round": 2,
        "source": "evol",
        "extra": {"k": None},
    }


# --------------------------------------------------------------------------------------------------
# errors name the file and line


JSONL_ERRORS = [
    ('{"text": "ok"}\n{"text": "broken"\n', 2, "invalid JSON"),
    ('{"text": "ok"}\n\n["a", "list"]\n', 3, "expected a JSON object, got an array"),
    ('{"text": "ok"}\n"just a string"\n', 2, "expected a JSON object, got a string"),
    ('{"text": "ok"}\n{"other": "x"}\n', 2, "missing text field 'text'"),
    ('{"text": "ok"}\n{"text": ""}\n', 2, "text field 'text' is empty"),
    ('{"text": "ok"}\n{"text": "  \\n\\t "}\n', 2, "text field 'text' is empty"),
    ('{"text": "ok"}\n{"text": 42}\n', 2, "text field 'text' is a number, expected a string"),
    ('{"text": "ok"}\n{"text": null}\n', 2, "text field 'text' is null"),
    ('{"text": "ok"}\n{"text": ["a"]}\n', 2, "text field 'text' is an array"),
]


@pytest.mark.parametrize(("content", "line", "reason"), JSONL_ERRORS)
def test_jsonl_errors_name_file_and_line(content: str, line: int, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(content, encoding="utf-8")
    err = error_of(path)
    assert err.path == str(path) and err.line == line
    assert str(err).startswith(f"{path}:{line}: ")
    assert reason in str(err)
    assert "\n" not in str(err)


def test_json_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('[\n  {"text": "ok"},\n  {"text": 5},\n  {"text": "fine"}\n]\n', encoding="utf-8")
    err = error_of(path)
    assert str(err).startswith(f"{path}:3: ") and "is a number" in str(err)
    path.write_text('[\n  {"text": "ok"},\n  {"text": "x",}\n]\n', encoding="utf-8")
    err = error_of(path)
    assert err.line == 3 and "invalid JSON" in str(err)
    path.write_text('[\n  {"text": "ok"}\n  {"text": "x"}\n]\n', encoding="utf-8")
    err = error_of(path)
    assert err.line == 3 and "expected ',' or ']'" in str(err)


def test_csv_wrong_column_count(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("text,label\nok,x\ntoo,many,cells\nshort\n", encoding="utf-8")
    err = error_of(path)
    assert str(err) == f"{path}:3: expected 2 fields as in the header, got 3"
    corpus = load_corpus(path, skip_invalid=True)
    assert [(s.line, s.reason) for s in corpus.skipped] == [
        (3, "expected 2 fields as in the header, got 3"),
        (4, "expected 2 fields as in the header, got 1"),
    ]


def test_csv_duplicate_header(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("text,text\na,b\n", encoding="utf-8")
    assert str(error_of(path)).startswith(f"{path}:1: duplicate column")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.jsonl", b'{"text": "ok"}\n{"text": "ok2"}\n{"text": "bad \xff byte"}\n{"text": "after"}\n'),
        ("c.txt", b"ok\nok2\nbad \xff byte\nafter\n"),
        ("c.csv", b"text\nok2\nbad \xfe byte\nafter\n"),
        ("c.json", b'[{"text": "ok"},\n{"text": "ok2"},\n{"text": "bad \xff byte"},\n{"text": "after"}]\n'),
    ],
)
def test_bad_utf8_names_the_line(name: str, content: bytes, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    err = error_of(path)
    assert err.line == 3 and "invalid UTF-8" in str(err) and str(err).startswith(f"{path}:3: ")
    if name != "c.json":  # a JSON document cannot be read around a bad byte
        corpus = load_corpus(path, skip_invalid=True)
        assert corpus.examples[-1].text == "after"
        assert [s.line for s in corpus.skipped] == [3]
        assert "invalid UTF-8" in corpus.skipped[0].reason


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.jsonl", ""),
        ("c.jsonl", "\n  \n\n"),
        ("c.txt", "\n\n"),
        ("c.csv", ""),
        ("c.csv", "text,label\n"),
        ("c.json", "[]"),
        ("c.json", "  "),
    ],
)
def test_empty_inputs_are_errors(name: str, content: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    err = error_of(path)
    assert str(err).startswith(f"{path}: ") and "no examples" in str(err)


def test_empty_parquet_is_an_error(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    assert "no examples" in str(error_of(path))


# --------------------------------------------------------------------------------------------------
# skip_invalid


def test_skip_invalid_records_every_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"text": "good one"}',
                '{"text": ',
                '{"text": ""}',
                "7",
                '{"text": "good two"}',
                '{"body": "x"}',
                '{"text": "good three"}',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    corpus = load_corpus(path, skip_invalid=True)
    assert [e.text for e in corpus.examples] == ["good one", "good two", "good three"]
    assert [e.source_line for e in corpus.examples] == [1, 5, 7]
    assert [s.line for s in corpus.skipped] == [2, 3, 4, 6]
    reasons = [s.reason for s in corpus.skipped]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1:] == [
        "text field 'text' is empty",
        "expected a JSON object, got a number",
        "missing text field 'text'",
    ]
    assert len(corpus.examples) + len(corpus.skipped) == 7  # nothing dropped silently


def test_skip_invalid_with_nothing_valid_still_fails(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": ""}\n{"text": 3}\n', encoding="utf-8")
    err = error_of(path, skip_invalid=True)
    assert "no valid examples" in str(err) and "2 rows" in str(err) and "line 1" in str(err)


# --------------------------------------------------------------------------------------------------
# content hash


def test_content_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.txt", ["alpha", "beta", "gamma"])
    first = load_corpus(path).content_hash
    assert len(first) == 64
    assert load_corpus(path).content_hash == first
    write_lines(path, ["alpha", "beta", "gamma"])  # rewritten, same content
    assert load_corpus(path).content_hash == first
    write_lines(path, ["alpha", "beta!", "gamma"])
    changed = load_corpus(path).content_hash
    assert changed != first
    write_lines(path, ["beta", "alpha", "gamma"])
    assert load_corpus(path).content_hash not in (first, changed)  # order matters


def test_content_hash_depends_on_ids(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": "t", "id": "1"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": "t", "id": "2"}])
    assert load_corpus(a, id_field="id").content_hash != load_corpus(b, id_field="id").content_hash
    assert load_corpus(a).content_hash != load_corpus(b).content_hash  # a field named `id` is the id by default
    c = write_jsonl(tmp_path / "c.jsonl", [{"text": "t"}])
    d = write_jsonl(tmp_path / "d.jsonl", [{"text": "t", "ref": "2"}])
    assert load_corpus(c).content_hash == load_corpus(d).content_hash  # content ids: same text, same hash


# --------------------------------------------------------------------------------------------------
# examples_from_texts


def test_examples_from_texts() -> None:
    examples = examples_from_texts(["a", "b"], ids=["x", "y"], labels=["l1", 2])
    assert [(e.id, e.text, e.label, e.source_line) for e in examples] == [
        ("x", "a", "l1", 1),
        ("y", "b", "2", 2),
    ]
    with pytest.raises(CorpusError, match="duplicate id 'x'"):
        examples_from_texts(["a", "b"], ids=["x", "x"])
    with pytest.raises(CorpusError, match="2 texts but 1 ids"):
        examples_from_texts(["a", "b"], ids=["x"])
    with pytest.raises(CorpusError, match="text 2 is empty"):
        examples_from_texts(["a", " "])


# --------------------------------------------------------------------------------------------------
# performance


def test_100k_jsonl_lines_load_quickly(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(100_000):
            f.write(
                json.dumps({"text": f"synthetic example {i % 90_000}", "round": i % 3, "parent_ids": [i]})
                + "\n"
            )
    start = time.perf_counter()
    corpus = load_corpus(path)
    elapsed = time.perf_counter() - start
    assert len(corpus.examples) == 100_000
    assert len({e.id for e in corpus.examples}) == 100_000  # 10k duplicate texts, still unique ids
    assert elapsed < 10, f"loading 100k lines took {elapsed:.1f}s"


def test_record_limit_holds_for_every_line_not_only_at_read_boundaries(tmp_path: Path, monkeypatch) -> None:
    """A line over the limit fails wherever it sits in the file; a line exactly at it loads."""
    from clusterdiv.io.corpus import MAX_RECORD_ENV

    monkeypatch.setenv(MAX_RECORD_ENV, str(100 / 2**20))  # 100 bytes a line
    at_limit = "x" * 100
    path = write_lines(tmp_path / "c.txt", ["a", at_limit, "b"])
    assert [e.text for e in load_corpus(path).examples] == ["a", at_limit, "b"]
    path = write_lines(tmp_path / "c.csv", ["text", "a", "y" * 101, "b"])
    with pytest.raises(CorpusError, match=r"c\.csv:3: a line exceeds the limit of 100 bytes"):
        load_corpus(path)
