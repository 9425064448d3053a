"""Issue 30, rows 1 and 18-22: what `clusterdiv serve` and a job may ask of the server.

The serve refusals go through the real CLI (a subprocess that must exit 2 at once, never serve);
the job rows through one real server on 127.0.0.1 with the fake LLM.
"""

from __future__ import annotations

import pytest
from corpora import intent_corpus
from service_server import ServerProcess, free_port, wait_for_job
from test_hostile_inputs import one_error_line, run_cli

FAST = {"metrics": "none", "bootstrap": 50}
TEXTS = [t for t, _ in intent_corpus(["weather", "alarm", "joke"], 4, seed=3)]


def serve(args: list[str], env: dict[str, str]):
    """`serve` with arguments it must refuse before binding (the timeout catches one that serves instead)."""
    return run_cli(["serve", "--port", str(free_port()), *args], env, timeout=60)


# ------------------------------------------------------------------------------ serve options (rows 18-20)


def test_blank_token_is_no_token_off_loopback(subprocess_env):
    """Row 18: a whitespace-only token could never be presented (HTTP strips it): refused like an empty one."""
    result = serve(["--host", "0.0.0.0"], {**subprocess_env, "CLUSTERDIV_API_TOKEN": "   "})
    assert one_error_line(result).strip() == (
        "error: refusing to serve on 0.0.0.0 without authentication: set CLUSTERDIV_API_TOKEN to a non-blank "
        "token (clients send it as 'Authorization: Bearer ...'), or bind to 127.0.0.1")


@pytest.mark.parametrize(("port", "bound"), [("99999", "less than or equal to 65535"),
                                             ("0", "greater than or equal to 1")])
def test_port_outside_1_to_65535_is_refused(port, bound, subprocess_env):
    """Row 19: 99999 used to be printed while a random port was bound; 0 (a random port) is refused too."""
    result = run_cli(["serve", "--port", port], subprocess_env, timeout=60)
    assert f"Invalid value for '--port': Input should be {bound}" in one_error_line(result)


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "0"], "error: Input should be greater than or equal to 1 (--workers)"),
    (["--max-body-mb", "-1"], "error: Input should be at least 0.000977 MB (1024 bytes) (--max-body-mb)"),
    (["--max-body-mb", "nan"], "error: Input should be a finite number (--max-body-mb)"),
    (["--max-examples", "0"], "error: Input should be greater than or equal to 1 (--max-examples)"),
])
def test_a_setting_out_of_bounds_names_its_option(args, message, subprocess_env):
    """Row 20: ServiceSettings' ValidationError (exit 1, a traceback's worth) is one line naming the flag."""
    assert one_error_line(serve(args, subprocess_env)).strip() == message


# ------------------------------------------------------------------------------ jobs (rows 1, 21, 22)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile-serve")
    proc = ServerProcess(workdir, args=["--representation", "criteria", "--model", "fake/echo"]).start()
    yield proc
    proc.stop()


def score_job(**options) -> dict:
    return {"kind": "score", "texts": TEXTS, "options": {**FAST, **options}}


RAY_REFUSED = ("options.engine 'ray' is not this server's engine: it runs jobs in-process: it was started "
               "without a Ray cluster (engine 'local'); leave engine out")


def test_a_job_asking_for_ray_is_refused_and_the_server_stays_up(server):
    """Row 1: Ray started from a job's thread took the whole server down a minute later; now it is never started."""
    with server.client() as client:
        refused = client.post("/v1/jobs", json=score_job(engine="ray"))
        assert refused.status_code == 422 and refused.json() == {"detail": RAY_REFUSED}
        upload = client.post("/v1/jobs/upload", files={"file": ("t.txt", "\n".join(TEXTS).encode())},
                             data={"options": '{"engine": "ray"}'})
        assert upload.status_code == 422 and upload.json() == {"detail": RAY_REFUSED}
        assert client.get("/v1/jobs").json()["jobs"] == []  # nothing was queued
        assert client.get("/healthz").status_code == 200
        for options in ({}, {"engine": "local"}):  # the server's own engine, implicit or named
            accepted = client.post("/v1/jobs", json=score_job(**options))
            assert accepted.status_code == 202, accepted.text
            done = wait_for_job(client, accepted.json()["id"])
            assert done["status"] == "succeeded", done
            assert client.get(done["links"]["report"]).json()["config"]["engine"] == "local"
    assert server.proc.poll() is None and "Ray instance" not in server.log()


def test_jobs_queued_before_the_checks_fail_alone(server):
    """Rows 1 and 22: a job stored before these checks (or by another server) fails with the reason
    when a worker takes it; the server goes on."""
    from clusterdiv.service.jobs import JobStore

    compare = {"kind": "compare", "batches": {"": TEXTS[:2], "b": TEXTS[2:4]}, "options": FAST}
    with JobStore(server.env["CLUSTERDIV_HISTORY_DB"]) as store:
        ray, blank = (store.submit(kind=r["kind"], request=r, n_examples=4, dataset=None, owner=None)
                      for r in (score_job(engine="ray"), compare))
    with server.client() as client:
        client.post("/v1/jobs", json=score_job(seed=1)).raise_for_status()  # wakes an idle worker
        assert wait_for_job(client, ray.id)["error"] == RAY_REFUSED
        assert wait_for_job(client, blank.id)["error"] == (
            "the job is no longer valid: compare.batches.''.[key]: Value error, a batch name must not be blank")
        assert client.get("/healthz").status_code == 200
    assert server.proc.poll() is None


@pytest.mark.parametrize("budget", [True, 2.0, "2"])
def test_select_budget_must_be_an_integer(server, budget):
    """Row 21: `"budget": true` ran with budget 1; every integer of a job is a JSON integer now."""
    with server.client() as client:
        response = client.post("/v1/jobs", json={"kind": "select", "texts": TEXTS, "budget": budget})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "select", "budget"] and error["msg"] == "Input should be a valid integer"


@pytest.mark.parametrize(("field", "value"), [("seed", True), ("bootstrap", "100"), ("sample", True)])
def test_option_integers_are_strict(server, field, value):
    with server.client() as client:
        response = client.post("/v1/jobs", json=score_job(**{field: value}))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert all(e["loc"][:4] == ["body", "score", "options", field] for e in detail), detail
    assert "Input should be a valid integer" in {e["msg"] for e in detail}


@pytest.mark.parametrize(("batches", "options", "loc", "msg"), [
    ({"": TEXTS[:1], "b": TEXTS[1:3]}, {}, ["body", "compare", "batches", "", "[key]"],
     "Value error, a batch name must not be blank"),
    ({"  ": TEXTS[:2], "b": TEXTS[2:4]}, {}, ["body", "compare", "batches", "  ", "[key]"],
     "Value error, a batch name must not be blank"),
    ({"a": TEXTS[:1], "b": TEXTS[1:3]}, {}, ["body", "compare", "batches", "a"],
     "List should have at least 2 items after validation, not 1"),
    ({"reference": TEXTS[:2], "b": TEXTS[2:4]}, {}, ["body", "compare", "batches", "reference", "[key]"],
     "Value error, 'reference' is reserved for the reference; name the batch differently"),
    ({"a": TEXTS[:2], "b": TEXTS[2:5]}, {"sample": 3}, ["body", "compare"],
     "Value error, options.sample 3 exceeds the smallest batch ('a' has 2)"),
    ({"a": TEXTS[:2], "b": TEXTS[2:5]}, {"sample": 1}, ["body", "compare"],
     "Value error, options.sample 1: compare needs at least 2 examples per batch"),
])
def test_compare_batches_are_checked_at_submit(server, batches, options, loc, msg):
    """Row 22: what `compare` refuses after queueing (blank or reserved names, one-example batches, a sample
    the smallest batch cannot give) is a 422 at submit naming the field."""
    with server.client() as client:
        response = client.post("/v1/jobs", json={"kind": "compare", "batches": batches, "options": options})
    assert response.status_code == 422, response.text
    errors = [(e["loc"], e["msg"]) for e in response.json()["detail"]]
    assert (loc, msg) in errors, errors
