"""Property-based and schema-driven tests (issue 13): hypothesis over the corpus parsers, schemathesis
over the service's own OpenAPI document against a real server on 127.0.0.1."""

from __future__ import annotations

import gzip
import io
import json

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="dev extra: hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from clusterdiv.core.errors import CorpusError  # noqa: E402
from clusterdiv.io.corpus import LoadedCorpus, load_corpus_bytes  # noqa: E402

FORMATS = ["jsonl", "json", "csv", "tsv", "txt", "parquet"]


def _load_or_error(data: bytes, name: str, **options) -> LoadedCorpus | None:
    """The loader's contract: a parsed corpus of non-empty texts, or a CorpusError (never anything else)."""
    try:
        corpus = load_corpus_bytes(data, filename=name, **options)
    except CorpusError as exc:
        assert str(exc).startswith(name.rsplit("/", 1)[-1]), str(exc)  # the message names the input
        return None
    assert corpus.examples and all(e.text.strip() for e in corpus.examples)
    assert len({e.id for e in corpus.examples}) == len(corpus.examples)
    return corpus


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4000), fmt=st.sampled_from(FORMATS), gz=st.booleans(), skip=st.booleans())
@example(data=b"[" * 200_000, fmt="json", gz=False, skip=False)  # nesting deeper than the recursion limit
@example(data=b'{"text": ' + b"[" * 200_000, fmt="jsonl", gz=False, skip=True)
@example(data=b"PAR1" + b"\x00" * 64 + b"PAR1", fmt="parquet", gz=False, skip=False)
@example(data=b"\x1f\x8b\x08\x00garbage", fmt="jsonl", gz=False, skip=False)
@example(data=b"text\n\x00\x00\n\"unterminated", fmt="csv", gz=False, skip=True)
def test_arbitrary_bytes_never_crash_the_loader(data, fmt, gz, skip):
    _load_or_error(gzip.compress(data) if gz else data, f"upload.{fmt}", skip_invalid=skip)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
records = st.lists(st.dictionaries(st.sampled_from(["text", "prompt", "id", "label", "x"]), json_values,
                                   max_size=4), max_size=12)


@settings(max_examples=300, deadline=None)
@given(rows=records, fmt=st.sampled_from(["jsonl", "json", "parquet", "csv"]), skip=st.booleans(),
       id_field=st.sampled_from([None, "id"]))
def test_structured_records_parse_or_fail_cleanly(rows, fmt, skip, id_field):
    if fmt == "jsonl":
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    elif fmt == "json":
        data = json.dumps(rows).encode()
    elif fmt == "csv":
        columns = sorted({k for r in rows for k in r}) or ["text"]
        lines = [",".join(columns)] + [",".join(json.dumps(r.get(c, ""))[:30].replace("\n", " ") for c in columns)
                                       for r in rows]
        data = "\n".join(lines).encode()
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table_rows = [{k: json.dumps(v) if not isinstance(v, str) else v for k, v in r.items()} for r in rows]
        columns = sorted({k for r in table_rows for k in r}) or ["text"]
        buffer = io.BytesIO()
        pq.write_table(pa.table({c: [r.get(c) for r in table_rows] for c in columns}), buffer)
        data = buffer.getvalue()
    _load_or_error(data, f"rows.{fmt}", skip_invalid=skip, id_field=id_field if any(
        "id" in r for r in rows) else None)


# ------------------------------------------------------------------------------ schemathesis

schemathesis = pytest.importorskip("schemathesis", reason="dev extra: schemathesis")


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    from service_server import ServerProcess

    workdir = tmp_path_factory.mktemp("schemathesis")
    server = ServerProcess(workdir, args=["--model", "fake/echo", "--workers", "1", "--max-examples", "50",
                                          "--max-body-mb", "1"]).start()
    yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    log = server.log()
    server.stop()
    assert "Traceback" not in log, log  # no request crashed the server, even where it answered 4xx


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_no_server_errors_and_responses_match_the_schema(case):
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance, status_code_conformance])
