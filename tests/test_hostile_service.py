"""Issue 30, the service's rows: hostile requests against a real `clusterdiv serve` on 127.0.0.1.

Non-standard JSON (row 3, and a fuzzer of it over every JSON input), an encoded `access_token` name in
the access log (row 4), repeated upload parts (23), connections that never finish their headers (24),
schema conformance (25), the upload's size hint (28) and `HEAD /healthz` (29). Two servers for the
whole module, one without a token and one with it, so the file runs in seconds.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import select
import socket
import time
from typing import Any

import httpx
import pytest
from service_server import ServerProcess

TOKEN = "tok-5b1e9a2c7d40"
TEXTS = b"set an alarm for six\nplay some jazz\n"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """No token; a 1 s header deadline, so the slow-connection tests take seconds."""
    server = ServerProcess(tmp_path_factory.mktemp("open"), args=[
        "--model", "fake/echo", "--workers", "1", "--max-body-mb", "1", "--header-timeout", "1"]).start()
    yield server
    log = server.log()
    server.stop()
    assert "Traceback" not in log, log  # no request crashed a handler, even where it answered 4xx


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("token"), args=[
        "--model", "fake/echo", "--workers", "1", "--log-level", "info"], token=TOKEN).start()
    yield server
    log = server.log()
    server.stop()
    assert "Traceback" not in log, log


def post_json(client: httpx.Client, raw: bytes) -> httpx.Response:
    return client.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})


def job_ids(server: ServerProcess) -> set[str]:
    """The server's jobs: a test compares them before and after, so a refused request queued nothing."""
    with server.client() as client:
        return {job["id"] for job in client.get("/v1/jobs").json()["jobs"]}


# ------------------------------------------------------------------------------ row 3: NaN, Infinity, 1e400

NONSTANDARD = [  # (body, where, the literal, the message)
    (b'{"kind": "score", "texts": ["a b", "c d"], "options": {"seed": NaN}}', ["body", "options", "seed"],
     "NaN", "NaN is not valid JSON: send a finite number, or null"),
    (b'{"kind": "select", "texts": ["a b", "c d"], "budget": 1, "max_share": Infinity}', ["body", "max_share"],
     "Infinity", "Infinity is not valid JSON: send a finite number, or null"),
    (b'{"kind": "score", "texts": ["a b", "c d"], "options": {"bootstrap": -Infinity}}',
     ["body", "options", "bootstrap"], "-Infinity", "-Infinity is not valid JSON: send a finite number, or null"),
    (b'{"kind": "select", "texts": ["a b", "c d"], "budget": 1e400}', ["body", "budget"],
     "1e400", "number 1e400 is out of range: it overflows to infinity"),
    (b'{"kind": "score", "texts": ["a b", NaN]}', ["body", "texts", 1],
     "NaN", "NaN is not valid JSON: send a finite number, or null"),
]


@pytest.mark.parametrize("which", ["open_server", "token_server"])
def test_nan_infinity_and_overflow_are_422_naming_the_field(which, request):
    server: ServerProcess = request.getfixturevalue(which)
    before = job_ids(server)
    with server.client() as client:
        for raw, loc, literal, message in NONSTANDARD:
            answer = post_json(client, raw)
            assert answer.status_code == 422, (raw, answer.text)
            assert answer.json()["detail"] == [{"type": "json_invalid", "loc": loc, "msg": message, "input": literal}]
        upload = client.post("/v1/jobs/upload", files={"file": ("a.txt", TEXTS)},
                             data={"options": '{"seed": 1e400, "bootstrap": NaN}'})
        assert upload.status_code == 422, upload.text
        assert [(e["loc"], e["msg"]) for e in upload.json()["detail"]] == [
            (["body", "options", "seed"], "number 1e400 is out of range: it overflows to infinity"),
            (["body", "options", "bootstrap"], "NaN is not valid JSON: send a finite number, or null")]
    if server.token:  # the token is still checked first: no body is parsed for an anonymous client
        assert httpx.post(f"{server.url}/v1/jobs", content=NONSTANDARD[0][0],
                          headers={"Content-Type": "application/json"}).status_code == 401
    assert job_ids(server) == before


# ------------------------------------------------------------------------------ the JSON body fuzzer

hypothesis = pytest.importorskip("hypothesis", reason="dev extra: hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from clusterdiv.service.security import MAX_JSON_DEPTH  # noqa: E402

OPTIONS = {"seed": 1, "bootstrap": 10, "sample": "all", "metrics": "none", "name_clusters": False}
JOBS: dict[str, dict[str, Any]] = {
    "score": {"kind": "score", "texts": ["set an alarm", {"text": "play jazz", "id": "j"}],
              "reference": ["tell a joke"], "dataset": "d", "tags": ["t"], "options": OPTIONS},
    "compare": {"kind": "compare", "batches": {"a": ["x y", "z w"], "b": ["p q", "r s"]}, "permutations": 99},
    "audit-tail": {"kind": "audit-tail", "texts": ["a b"], "min_count": 1, "tail": {"entries": [
        {"name": "alarms", "description": "set alarms", "seeds": ["wake me"], "threshold": 0.5}]}},
    "select": {"kind": "select", "texts": ["a b", "c d"], "budget": 1, "max_share": 0.5},
    "seeds": {"kind": "seeds", "texts": ["a b"], "reference": ["c d"], "per_mode": 2, "missing_only": True},
}
MARK = "\u0000HOSTILE\u0000"
CONSTANTS = ["NaN", "Infinity", "-Infinity"]


def paths(value: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found += paths(child, (*path, key))
    return found


def put(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def hostile_documents(draw, base: dict[str, Any]) -> tuple[str, tuple, str, str]:
    """(JSON text, where the problem is, what the message must say, attack) for one attack on `base`."""
    doc = copy.deepcopy(base)
    attack = draw(st.sampled_from(["constant", "overflow", "big-int", "repeated-key", "deep"]))
    if attack == "repeated-key":
        path = draw(st.sampled_from([p for p in paths(doc) if isinstance(at(doc, p), dict) and at(doc, p)]))
        key = draw(st.sampled_from(sorted(at(doc, path))))
        at(doc, path)[MARK] = draw(st.sampled_from([None, 1, "x", [1]]))
        text = json.dumps(doc).replace(json.dumps(MARK), json.dumps(key))
        return text, (*path, key), f"key {key!r} appears more than once in this JSON object", attack
    path = draw(st.sampled_from(paths(doc)))
    if attack == "constant":
        literal = draw(st.sampled_from(CONSTANTS))
        message = f"{literal} is not valid JSON: send a finite number, or null"
    elif attack == "overflow":
        literal = draw(st.sampled_from(["1e400", "-1e400", "1.5E+999", "9" * 400 + ".0"]))
        message = "is out of range: it overflows to infinity"
    elif attack == "big-int":
        literal = draw(st.sampled_from(["", "-"])) + "1" + "0" * draw(st.integers(19, 5000))
        message = "is out of range: more than 64 bits"
    else:
        depth = draw(st.integers(MAX_JSON_DEPTH + 1, 3000))
        literal = "[" * depth + "]" * depth
        message = "nested"
    return json.dumps(put(doc, path, MARK)).replace(json.dumps(MARK), literal), path, message, attack


def assert_names_the_problem(answer: httpx.Response, prefix: list, path: tuple, message: str, attack: str) -> None:
    assert answer.status_code == 422, (attack, path, answer.status_code, answer.text[:500])
    errors = answer.json()["detail"]
    assert isinstance(errors, list) and errors, answer.text[:500]
    if attack == "deep":  # located where the walk stops, or at the document when the parser itself gives up
        assert all(message in e["msg"] for e in errors), errors
        assert all(e["loc"] == prefix or e["loc"][:len(prefix) + len(path)] == [*prefix, *path]
                   for e in errors), (path, errors)
        return
    assert [e["loc"] for e in errors] == [[*prefix, *path]], (path, errors)
    assert message in errors[0]["msg"], errors


@pytest.fixture(scope="module")
def open_client(open_server):
    with open_server.client() as client:
        yield client


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), kind=st.sampled_from(sorted(JOBS)))
def test_fuzz_nonstandard_json_bodies_are_422_naming_the_problem(open_client, data, kind):
    text, path, message, attack = data.draw(hostile_documents(JOBS[kind]))
    assert_names_the_problem(post_json(open_client, text.encode()), ["body"], path, message, attack)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_nonstandard_json_in_the_upload_options_is_422_naming_the_problem(open_client, data):
    text, path, message, attack = data.draw(hostile_documents(OPTIONS))
    answer = open_client.post("/v1/jobs/upload", files={"file": ("a.txt", TEXTS)}, data={"options": text})
    assert_names_the_problem(answer, ["body", "options"], path, message, attack)


def test_fuzz_examples_with_exact_messages(open_server):
    """The fuzzer's families once each with the full answer, and nothing of it queued."""
    before = job_ids(open_server)
    cases = [
        ('{"kind": "score", "kind": "compare", "texts": ["a b", "c d"]}',
         {"type": "json_invalid", "loc": ["body", "kind"], "input": None,
          "msg": "key 'kind' appears more than once in this JSON object"}),
        ('{"kind": "select", "texts": ["a b"], "budget": 100000000000000000000}',
         {"type": "json_invalid", "loc": ["body", "budget"], "input": "100000000000000000000",
          "msg": "integer 100000000000000000000 is out of range: more than 64 bits"}),
        ('{"kind": "score", "texts": ' + "[" * 100_000 + "]" * 100_000 + "}",
         {"type": "json_invalid", "loc": ["body"], "input": None,
          "msg": f"JSON nested too deeply to parse (at most {MAX_JSON_DEPTH} levels)"}),
        ('{"kind": "score", "texts": ["a b"], "tags": ' + "[" * 70 + "]" * 70 + "}",
         {"type": "json_invalid", "loc": ["body", "tags", *[0] * (MAX_JSON_DEPTH - 1)], "input": None,
          "msg": f"JSON nested more than {MAX_JSON_DEPTH} levels deep"}),
    ]
    with open_server.client() as client:
        for text, error in cases:
            answer = post_json(client, text.encode())
            assert answer.status_code == 422 and answer.json()["detail"] == [error], (text[:80], answer.text)
        bad_utf8 = post_json(client, b'{"kind": "score", "texts": ["\xff\xfe"]}')
        assert bad_utf8.status_code == 422
        assert bad_utf8.json()["detail"][0]["msg"] == "JSON is not valid UTF-8 (invalid start byte at byte offset 29)"
    assert job_ids(open_server) == before


# ------------------------------------------------------------------------------ row 4: encoded token names


def test_percent_encoded_access_token_name_is_redacted_in_the_access_log(token_server):
    with httpx.Client(base_url=token_server.url, timeout=30) as anon:
        for name in ("access%5Ftoken", "%61ccess_token", "access_token"):
            answer = anon.get(f"/v1/jobs/nojob/explorer?{name}={TOKEN}&x=1")
            # the token check decodes the name, so these are the token: past the guard, to the 404
            assert answer.status_code == 404 and answer.json() == {"detail": "no job nojob"}, name
    time.sleep(0.5)
    log = token_server.log_path.read_text()
    for name in ("access%5Ftoken", "%61ccess_token", "access_token"):
        assert f"/v1/jobs/nojob/explorer?{name}=[redacted]&x=1" in log, log[-2000:]
    assert TOKEN not in log


# ------------------------------------------------------------------------------ row 23: repeated parts


def test_upload_with_a_repeated_part_is_422_instead_of_dropping_one(open_server):
    before = job_ids(open_server)
    with open_server.client() as client:
        two_files = client.post("/v1/jobs/upload", files=[("file", ("a.txt", TEXTS)), ("file", ("b.txt", TEXTS))])
        assert two_files.status_code == 422, two_files.text
        assert two_files.json()["detail"] == [{"type": "repeated_part", "loc": ["body", "file"], "input": None,
                                               "msg": "form part 'file' is sent 2 times; send it once"}]
        two_options = client.post("/v1/jobs/upload", files={"file": ("a.txt", TEXTS)},
                                  data={"options": ['{"seed": 1}', '{"seed": 2}']})
        assert two_options.status_code == 422
        assert two_options.json()["detail"][0]["msg"] == "form part 'options' is sent 2 times; send it once"
    assert job_ids(open_server) == before


# ------------------------------------------------------------------------------ row 24: header deadline

HEADER_TIMEOUT_REPLY = b"HTTP/1.1 408 Request Timeout"


def read_one_response(sock: socket.socket) -> bytes:
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def read_until_closed(sock: socket.socket) -> bytes:
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    return reply


def test_a_connection_sending_nothing_is_closed_at_the_header_deadline(open_server):
    with socket.create_connection(("127.0.0.1", open_server.port), timeout=30) as sock:
        started = time.monotonic()
        reply = read_until_closed(sock)
        waited = time.monotonic() - started
    assert reply.startswith(HEADER_TIMEOUT_REPLY), reply
    assert reply.endswith(b'{"detail": "request headers timed out: not complete after 1 s"}')
    assert 0.8 <= waited < 5, waited  # --header-timeout 1, not the 90 s the probe saw


@pytest.mark.parametrize("kept_alive", [False, True], ids=["fresh", "after-a-response"])
def test_headers_trickled_a_line_at_a_time_are_cut_at_the_deadline(open_server, kept_alive):
    with socket.create_connection(("127.0.0.1", open_server.port), timeout=30) as sock:
        if kept_alive:  # the deadline starts again for the next request on a kept-alive connection
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_one_response(sock).startswith(b"HTTP/1.1 200 OK")
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(100):  # a header every 0.3 s until the server answers (slowloris)
            if select.select([sock], [], [], 0.3)[0]:
                break
            sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
        reply = read_until_closed(sock)
        waited = time.monotonic() - started
    assert reply.startswith(HEADER_TIMEOUT_REPLY), reply
    assert 0.8 <= waited < 5, waited


def test_the_header_deadline_does_not_cut_a_request_whose_headers_arrived(open_server):
    body = b'{"kind": "score", "texts": [""]}'
    with socket.create_connection(("127.0.0.1", open_server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
        time.sleep(1.6)  # past the 1 s header deadline; well within the 30 s body timeout
        sock.sendall(body[10:])
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 422"), reply[:200]  # validated (the blank text), not cut with a 408
    assert b'"loc":["body","score","texts",0,' in reply


def test_header_timeout_option_is_validated(subprocess_env):
    from test_hostile_inputs import one_error_line, run_cli

    result = run_cli(["serve", "--header-timeout", "0"], subprocess_env)
    assert "--header-timeout" in one_error_line(result)


# ------------------------------------------------------------------------------ row 25: conformance


def test_options_allow_header_lists_exactly_the_documented_methods(open_server):
    with open_server.client() as client:
        spec = client.get("/openapi.json").json()
        for path, operations in spec["paths"].items():
            url = path.replace("{job_id}", "somejob").replace("{dataset}", "someset")
            answer = client.options(url)
            assert answer.status_code == 405, (path, answer.status_code)
            [allow] = answer.headers.get_list("allow")  # once, listing every method of the path
            assert set(allow.split(", ")) - {"HEAD"} == {m.upper() for m in operations}, (path, allow)
        assert client.options("/healthz").headers["allow"] == "GET, HEAD"  # HEAD: answered, not documented


def test_head_healthz_is_answered(open_server):
    answer = httpx.head(f"{open_server.url}/healthz", timeout=30)
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["content-type"] == "application/json"


def test_strict_booleans_and_the_tail_schema_agree_with_validation(open_server):
    before = job_ids(open_server)
    tail = [{"name": "alarms", "description": "requests to set alarms"}]
    with open_server.client() as client:
        spec = client.get("/openapi.json").json()["components"]["schemas"]
        for body, loc in [
            ({"kind": "seeds", "texts": ["a b"], "reference": ["c d"], "missing_only": 0}, ["seeds", "missing_only"]),
            ({"kind": "seeds", "texts": ["a b"], "reference": ["c d"], "missing_only": "yes"},
             ["seeds", "missing_only"]),
            ({"kind": "score", "texts": ["a b"], "options": {"name_clusters": 1}}, ["score", "options", "name_clusters"]),
        ]:
            answer = client.post("/v1/jobs", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert [e["loc"] for e in answer.json()["detail"]] == [["body", *loc]]
            assert answer.json()["detail"][0]["msg"] == "Input should be a valid boolean"
        # what the schema says of `tail` is what is accepted: at least one entry, with name and description
        tail_schema = spec["AuditTailJob"]["properties"]["tail"]["anyOf"]
        assert {"$ref": "#/components/schemas/TailSpec"} in tail_schema
        assert [s for s in tail_schema if s.get("type") == "array"][0]["minItems"] == 1
        assert spec["TailSpec"]["properties"]["entries"]["minItems"] == 1
        assert set(spec["TailEntry"]["required"]) == {"name", "description"}
        for empty in ([], {"entries": []}):
            answer = client.post("/v1/jobs", json={"kind": "audit-tail", "texts": ["a b"], "tail": empty})
            assert answer.status_code == 422
            assert answer.json()["detail"][0]["loc"] == ["body", "audit-tail", "tail"]
            assert "tail: spec: field 'entries': List should have at least 1 item" in answer.json()["detail"][0]["msg"]
        assert job_ids(open_server) == before
        # both documented forms are accepted; the job is cancelled at once (a 409 page for the next check)
        for form in (tail, {"entries": tail}):
            job = client.post("/v1/jobs", json={"kind": "audit-tail", "texts": ["a b", "c d"], "tail": form})
            assert job.status_code == 202, job.text
            assert client.post(f"/v1/jobs/{job.json()['id']}/cancel").status_code == 200
        # the explorer's errors are JSON, and documented so (they were documented as text/html)
        explorer = client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/explorer"]["get"]["responses"]
        assert list(explorer["200"]["content"]) == ["text/html"]
        assert all(list(explorer[code]["content"]) == ["application/json"] for code in explorer if code != "200")
        conflict = client.get(f"/v1/jobs/{job.json()['id']}/explorer")
        assert conflict.status_code == 409 and conflict.headers["content-type"] == "application/json"
        assert conflict.json() == {"detail": f"job {job.json()['id']} is cancelled: cancelled by request"}


def test_upload_parts_are_not_documented_as_nullable(open_server):
    with open_server.client() as client:
        spec = client.get("/openapi.json").json()["components"]["schemas"]
        parts = spec["Body_upload_job_v1_jobs_upload_post"]["properties"]
        assert all("anyOf" not in schema and schema["type"] == "string" for schema in parts.values()), parts
        # so a text part named `reference` is what the schema says it is not: a file
        answer = client.post("/v1/jobs/upload", files={"file": ("a.txt", TEXTS)}, data={"reference": "null"})
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "reference"]


def test_every_boolean_and_integer_field_refuses_other_json_types(open_server):
    """The schema, read back: where it says boolean or integer, a number, a string or a boolean of the
    other kind is a 422 naming the field (`missing_only: 0` was accepted)."""
    before = job_ids(open_server)
    with open_server.client() as client:
        spec = client.get("/openapi.json").json()["components"]["schemas"]
        checked = []
        for kind, base in JOBS.items():
            name = {"score": "ScoreJob", "compare": "CompareJob", "audit-tail": "AuditTailJob",
                    "select": "SelectJob", "seeds": "SeedsJob"}[kind]
            fields = [((), prop, schema) for prop, schema in spec[name]["properties"].items()]
            fields += [(("options",), prop, schema) for prop, schema in spec["JobOptions"]["properties"].items()]
            for where, prop, schema in fields:
                types = {s.get("type") for s in schema.get("anyOf", [schema])}
                wrong = {"boolean": [0, 1, "true"], "integer": [True, "5", 2.5]}
                for declared in types & set(wrong):
                    for value in wrong[declared]:
                        body = copy.deepcopy(base) | ({"options": dict(base.get("options", {}))} if where else {})
                        put(body, (*where, prop), value)
                        answer = client.post("/v1/jobs", json=body)
                        assert answer.status_code == 422, (kind, prop, value, answer.text)
                        assert [kind, *where, prop] in [e["loc"][1:2 + len(where) + 1] for e in answer.json()["detail"]]
                    checked.append((kind, *where, prop))
    assert ("seeds", "missing_only") in checked and ("score", "options", "name_clusters") in checked
    assert ("select", "budget") in checked and ("compare", "options", "seed") in checked
    assert job_ids(open_server) == before


# ------------------------------------------------------------------------------ row 28: the upload's hint


def test_gzip_upload_over_the_limit_names_the_servers_option(open_server):
    bomb = gzip.compress(b'{"text": "' + b"y" * 2_000_000 + b'"}\n', compresslevel=9)
    with open_server.client() as client:
        answer = client.post("/v1/jobs/upload", files={"file": ("big.jsonl.gz", bomb)})
    assert answer.status_code == 413, answer.text
    assert answer.json() == {"detail": "big.jsonl.gz: decompressed data exceeds the limit of 1048576 bytes "
                                       "(the server's --max-body-mb)"}
