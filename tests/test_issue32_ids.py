"""Ids and labels (issue 32's "ids and labels" row, issue 33 item 4), through the real CLI and the service.

A field named `id` is the id with no flag, in the batch and the reference (prefixed `ref:` where the
two share a report); ids made up from content say so. `--label-field` gives each mode its top gold
labels and purity in score, compare and explore; `score --assignments` carries each row's text and
label; `seeds` lines carry the mode's labels and the real rows left out of it, with why.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from corpora import intent_corpus
from service_server import ServerProcess, wait_for_job
from test_cli import cli_env, run_cli, write_jsonl

KEPT = ["weather", "alarm", "transfer", "recipe"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ids")
    batch = [{"id": f"b{i}", "text": t, "intent": y, "source": "synthetic"}
             for i, (t, y) in enumerate(intent_corpus(KEPT, 64, seed=1))]
    real = intent_corpus(KEPT, 48, seed=2) + intent_corpus(["translate"], 30, seed=3)
    reference = [{"id": f"r{i}", "text": t, "intent": y, "source": "real"} for i, (t, y) in enumerate(real)]
    flagged = [r["id"] for r in reference if r["intent"] == "translate"][:4]
    for r in reference:  # declared synthetic: never a seed, and each mode's line says so
        if r["id"] in flagged:
            r["source"] = "synthetic"
    return {"root": root, "batch_rows": batch, "reference_rows": reference, "flagged": flagged,
            "batch": write_jsonl(root / "batch.jsonl", batch),
            "reference": write_jsonl(root / "real.jsonl", reference)}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """`subprocess_env` at module scope, so the CLI runs below are shared by several tests."""
    return cli_env(tmp_path_factory.mktemp("ids-env"))


@pytest.fixture(scope="module")
def scored(data, env) -> dict:
    assignments = data["root"] / "assignments.jsonl"
    result = run_cli(["score", str(data["batch"]), "--reference", str(data["reference"]), "--label-field", "intent",
                      "--metrics", "none", "--format", "json", "--no-record", "--no-progress",
                      "--assignments", str(assignments)], env)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in assignments.read_text(encoding="utf-8").splitlines()]
    return {"report": json.loads(result.stdout), "assignments": rows}


def test_score_keeps_the_batch_and_reference_ids_without_a_flag(data, scored):
    report = scored["report"]
    batch_ids = {r["id"] for r in data["batch_rows"]}
    reference_ids = {r["id"] for r in data["reference_rows"]}
    assert report["ids"] == "from the 'id' field; reference from the 'id' field"
    listed = {i for c in report["clusters"] for i in c["example_ids"]}
    assert listed and listed <= batch_ids
    shares = report["metrics"]["cluster_shares"]["clusters"]
    ref_listed = {i for c in shares for i in c["reference_example_ids"]}
    assert ref_listed and {i.removeprefix("ref:") for i in ref_listed} <= reference_ids
    assert all(i.startswith("ref:") for i in ref_listed)  # kept apart from the batch's, still readable


def test_score_label_field_gives_each_mode_its_labels_and_purity(data, scored):
    label_of = {r["id"]: r["intent"] for r in data["batch_rows"]}
    members: dict[int, list[str]] = {}
    for row in scored["assignments"]:
        members.setdefault(row["mode_id"], []).append(label_of[row["id"]])
    clusters = scored["report"]["clusters"]
    assert clusters
    for c in clusters:
        counts = Counter(members[c["cluster_id"]])
        assert [(v["value"], v["count"]) for v in c["labels"]] == counts.most_common(3)
        assert c["label_purity"] == pytest.approx(counts.most_common(1)[0][1] / c["size"], abs=1e-6)


def test_assignments_carry_the_rows_own_id_text_and_label(data, scored):
    rows = scored["assignments"]
    assert [(r["id"], r["text"], r["label"]) for r in rows] == [
        (r["id"], r["text"], r["intent"]) for r in data["batch_rows"]]


def test_made_up_ids_are_said_so_and_a_named_id_field_stays_strict(data, env, tmp_path):
    plain = write_jsonl(tmp_path / "noid.jsonl", [{"text": r["text"]} for r in data["batch_rows"][:24]])
    twice = write_jsonl(tmp_path / "dup.jsonl", [{"id": "same" if i < 2 else r["id"], "text": r["text"]}
                                                 for i, r in enumerate(data["batch_rows"][:24])])
    base = ["--metrics", "none", "--no-record", "--no-progress"]
    table = run_cli(["score", str(plain), *base], env)
    assert table.returncode == 0, table.stderr
    assert "ids: made up (content hash): no 'id' field" in table.stdout
    dup = run_cli(["score", str(twice), *base, "--format", "json"], env)
    assert dup.returncode == 0, dup.stderr
    report = json.loads(dup.stdout)
    assert report["ids"] == "made up (content hash): duplicate id 'same' (line 2)"
    assert not {i for c in report["clusters"] for i in c["example_ids"]} & {"same"}
    strict = run_cli(["score", str(twice), *base, "--id-field", "id"], env)
    assert strict.returncode == 2 and "duplicate id 'same'" in strict.stderr


def test_seeds_lines_carry_the_modes_labels_and_its_excluded_rows(data, env):
    result = run_cli(["seeds", str(data["batch"]), "--reference", str(data["reference"]), "--label-field", "intent",
                      "--per-mode", "3", "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    modes = [json.loads(line) for line in result.stdout.splitlines()]
    intent = {r["id"]: r["intent"] for r in data["reference_rows"]}
    translate = [m for m in modes if m["labels"][0]["value"] == "translate"]
    assert translate and translate[0]["label_purity"] == pytest.approx(
        translate[0]["labels"][0]["count"] / sum(v["count"] for v in translate[0]["labels"]))
    for m in modes:
        assert all(s["id"] in intent and s["label"] == intent[s["id"]] for s in m["seeds"])
        assert not {s["id"] for s in m["seeds"]} & set(data["flagged"])
    excluded = {e["id"]: e["reason"] for m in modes for e in m["excluded"]}
    assert set(excluded) == set(data["flagged"])  # all four sit in the missing translate mode
    assert set(excluded.values()) == {"source=synthetic"}
    assert all(i in result.stderr for i in data["flagged"])  # the summary lists them too


def test_compare_and_explore_take_label_field(data, env, tmp_path):
    other = write_jsonl(tmp_path / "other.jsonl", data["reference_rows"][:48])
    compared = run_cli(["compare", str(data["batch"]), str(other), "--label-field", "intent", "--metrics", "none",
                        "--permutations", "99", "--format", "json", "--no-progress"], env)
    assert compared.returncode == 0, compared.stderr
    clusters = json.loads(compared.stdout)["clusters"]
    assert clusters and all(c["labels"] and 0 < c["label_purity"] <= 1 for c in clusters)
    own = {f"batch:{r['id']}" for r in data["batch_rows"]} | {f"other:{r['id']}" for r in data["reference_rows"]}
    assert {i for c in clusters for i in c["example_ids"]} <= own  # each batch's own ids, named by batch
    out = tmp_path / "explore.json"
    explored = run_cli(["explore", str(data["batch"]), "--label-field", "intent", "--json", str(out),
                        "--model", "fake/echo", "--no-progress", "--no-downloads"], env)
    assert explored.returncode == 0, explored.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["clusters"]
    for c in doc["clusters"]:  # no reference: every member is a labelled batch row
        assert c["labels"] and {v["value"] for v in c["labels"]} <= set(KEPT)
        assert c["label_purity"] == pytest.approx(c["labels"][0]["count"] / c["size"], abs=1e-6)
    assert doc["report"]["clusters"][0]["label_purity"] is not None


def test_select_writes_the_input_ids_back_without_a_flag(data, env, tmp_path):
    out = tmp_path / "subset.jsonl"
    result = run_cli(["select", str(data["batch"]), "--budget", "10", "--out", str(out), "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    by_id = {r["id"]: r for r in data["batch_rows"]}
    assert len(kept) == 10 and all(by_id[r["id"]] == r for r in kept)


def test_service_upload_keeps_the_input_ids_without_id_field(data, tmp_path):
    proc = ServerProcess(tmp_path, args=["--model", "fake/echo", "--workers", "1"]).start()
    try:
        with proc.client() as client:
            sent = client.post("/v1/jobs/upload", files={"file": ("batch.jsonl", data["batch"].read_bytes())},
                               data={"options": json.dumps({"metrics": "none", "bootstrap": 50})})
            assert sent.status_code == 202, sent.text
            done = wait_for_job(client, sent.json()["id"])
            assert done["status"] == "succeeded", done
            report = client.get(done["links"]["report"]).json()
    finally:
        proc.stop()
    listed = {i for c in report["clusters"] for i in c["example_ids"]}
    assert listed and listed <= {r["id"] for r in data["batch_rows"]}
