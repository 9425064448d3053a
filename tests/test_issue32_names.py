"""Issue 32, "mode names": names that cannot mislead by default, and one name per mode everywhere.

Default names are extractive (a mode's c-TF-IDF words, `modes.names`); LLM names come only on request
and are refused when a word of theirs occurs in none of the members. Through the real CLI, with one
batch and reference shared by the whole module (every subprocess costs seconds of imports).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from corpora import intent_corpus
from test_cli import cli_env, run_cli, write_jsonl

WORD = re.compile(r"\w+")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return cli_env(tmp_path_factory.mktemp("names-env"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("names")
    batch = [t for t, _ in intent_corpus(["weather", "music", "alarm", "joke"], 40, seed=1)]
    real = ([t for t, _ in intent_corpus(["weather", "music", "alarm", "joke"], 40, seed=2)]
            + [t for t, _ in intent_corpus(["translate"], 40, seed=3)])  # a real intent the batch never has
    return {"base": base,
            "batch": write_jsonl(base / "batch.jsonl", [{"id": f"b{i}", "text": t} for i, t in enumerate(batch)]),
            "real": write_jsonl(base / "real.jsonl", [{"id": f"r{i}", "text": t} for i, t in enumerate(real)])}


@pytest.fixture(scope="module")
def default_exploration(files, env) -> dict:
    out = files["base"] / "default.json"
    done = run_cli(["explore", str(files["batch"]), "--reference", str(files["real"]), "--json", str(out),
                    "--no-downloads", "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    assert "names from each cluster's distinctive words" in " ".join(done.stderr.split())
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def score_json(files, env) -> dict:
    assignments = files["base"] / "modes.jsonl"
    done = run_cli(["score", str(files["batch"]), "--reference", str(files["real"]), "--format", "json",
                    "--assignments", str(assignments), "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    return {"report": json.loads(done.stdout),
            "assignments": [json.loads(line) for line in assignments.read_text().splitlines()]}


def test_no_mode_name_in_the_explorer_of_a_default_run_contains_a_word_absent_from_its_members(default_exploration):
    page = default_exploration
    assert page["naming_model"] is None and page["clusters"]
    for c in page["clusters"]:
        members = [p["text"].lower() for p in page["points"] if p["cluster"] == c["cluster_id"]]
        words = set(WORD.findall(" ".join(members)))
        assert c["named_by"] == "terms" and c["name"] and c["name"] != "unnamed cluster"
        absent = [w for w in WORD.findall(c["name"].lower()) if w not in words]
        assert not absent, (c["name"], absent)
        # the description shows the most central member, verbatim (clipped)
        example = re.search(r'most central example: "(.*)"', c["description"]).group(1).rstrip(".")
        assert any(m.startswith(example.lower()) for m in members), c["description"]


def test_the_report_the_explorer_seeds_and_assignments_call_each_mode_by_one_name(default_exploration, score_json,
                                                                                  files, env):
    report, rows = score_json["report"], score_json["assignments"]
    page_names = {c["cluster_id"]: c["name"] for c in default_exploration["clusters"]}
    shares = report["metrics"]["cluster_shares"]["clusters"]
    # the report's shared modes are the explorer's modes (same space): the same name for each
    assert {r["cluster_id"]: r["name"] for r in shares} == page_names
    # --assignments: the batch-alone modes' names, as the report's largest clusters give them
    by_mode = {c["cluster_id"]: c["name"] for c in report["clusters"]}
    scored = [r for r in rows if r["status"] == "scored" and r["mode_id"] >= 0]
    assert scored and all(r["mode_name"] == by_mode[r["mode_id"]] and r["mode_name"] for r in scored)

    seeds = run_cli(["seeds", str(files["batch"]), "--reference", str(files["real"]), "--no-progress"], env)
    assert seeds.returncode == 0, seeds.stderr
    lines = [json.loads(line) for line in seeds.stdout.splitlines() if line.strip()]
    assert lines and all(line["name"] == page_names[line["mode_id"]] for line in lines)

    md = run_cli(["score", str(files["batch"]), "--reference", str(files["real"]), "--format", "markdown",
                  "--no-progress"], env)
    assert md.returncode == 0, md.stderr
    lacking = [r for r in shares if r["flag"] in ("missing", "under")]
    assert lacking  # translate
    coverage = next(line for line in md.stdout.splitlines() if "coverage vs the reference" in line)
    top = max(lacking, key=lambda r: r["reference_share"] - r["batch_share"])
    assert f'"{top["name"]}"' in coverage and "most lacking" in coverage
    table = md.stdout.split("## Modes versus the reference", 1)[1]
    assert all(re.search(rf"\| M?{r['cluster_id']} \| {re.escape(r['name'])} \|", table) for r in lacking)


def test_compare_names_the_shared_modes_in_its_tables_and_chart(files, env):
    chart = files["base"] / "chart.png"
    done = run_cli(["compare", str(files["batch"]), str(files["real"]), "--format", "json", "--chart", str(chart),
                    "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["clusters"] and all(c["name"] for c in report["clusters"])
    named = {c["cluster_id"]: c["name"] for c in report["clusters"]}
    for rep in report["representation"]:
        assert all(r["name"] == named[r["cluster_id"]] for r in rep["clusters"] if r["cluster_id"] in named)
    assert chart.stat().st_size > 0


def test_llm_names_only_on_request_and_a_name_absent_from_the_members_is_refused(files, env):
    out = files["base"] / "llm.json"
    done = run_cli(["explore", str(files["batch"]), "--json", str(out), "--no-downloads", "--no-progress",
                    "--names", "llm", "--model", "fake/misname"], env)
    assert done.returncode == 0, done.stderr
    page = json.loads(out.read_text())
    assert page["naming_model"] == "fake/misname"
    # every LLM name was "dumbbell requests": refused, each cluster keeps its extractive name and says why
    assert all(c["named_by"] == "terms" and "dumbbell" not in c["name"] and "dumbbell" in c["naming_error"]
               for c in page["clusters"])
    grounded = files["base"] / "echo.json"
    done = run_cli(["explore", str(files["batch"]), "--json", str(grounded), "--no-downloads", "--no-progress",
                    "--names", "llm", "--model", "fake/echo"], env)
    assert done.returncode == 0, done.stderr
    assert {c["named_by"] for c in json.loads(grounded.read_text())["clusters"]} == {"llm"}  # words of the members


def test_the_service_names_clusters_by_their_words_unless_asked():
    from clusterdiv.service.schemas import JobOptions

    field = JobOptions.model_fields["name_clusters"]
    assert field.default is False and "LLM call" in field.description
