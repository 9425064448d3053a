"""Issue 32, rows "score --reference numbering", "coverage line" and "noise", through the real CLI.

One scenario shared by every test (each CLI run costs seconds of imports): a batch collapsed onto three
intents plus one the real data never has, against real data of ten intents, so the joint mode space
has covered, lacking and batch-only modes. `score`, `seeds` and `explore` must count them alike; the
report must say its numbers unambiguously and put what the libraries say into its `warnings`.
"""

from __future__ import annotations

import json
import re

import pytest
from corpora import intent_corpus
from test_cli import cli_env, run_cli, write_jsonl

from clusterdiv.reports.coverage import coverage_line
from clusterdiv.reports.report import Report
from clusterdiv.reports.sections import mode_ref

REAL = ["weather", "alarm", "transfer", "recipe", "music", "translate", "flight", "calories", "joke", "timer"]
WARNING_PLUGIN = '''
import warnings


def loud(inputs):
    warnings.warn("the loud metric is only a test", UserWarning, stacklevel=2)
    return 0.5


def register(registry):
    registry.register_metric("loud", loud, group="lexical", meaning="a metric that warns", direction=0)
'''


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("issue32")
    batch = [*intent_corpus(["weather", "music", "alarm"], 75, seed=4), *intent_corpus(["balance"], 15, seed=5)]
    real = intent_corpus(REAL, 150, seed=3)
    env = cli_env(root, extra_path=(root,))  # a fresh cache: the first run is a cold one
    return {
        "root": root, "env": env,
        "batch": write_jsonl(root / "batch.jsonl", [{"id": f"b{i}", "text": t} for i, (t, _) in enumerate(batch)]),
        "real": write_jsonl(root / "real.jsonl", [{"id": f"r{i}", "text": t} for i, (t, _) in enumerate(real)]),
    }


def cli(scenario: dict, *args: str, env: dict | None = None):
    result = run_cli([*args, "--no-progress"], env or scenario["env"])
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def scored(scenario: dict):
    """`score --reference --format json` on the cold cache: the first run of the module."""
    result = cli(scenario, "score", str(scenario["batch"]), "--reference", str(scenario["real"]),
                 "--format", "json", "--no-record")
    return Report.model_validate(json.loads(result.stdout)), result.stderr


def flag_counts(flags: list[str | None]) -> dict[str, int]:
    return {f: flags.count(f) for f in ("missing", "under", "untestable", "batch_only")}


def test_score_seeds_and_explore_count_the_same_real_covered_and_lacking_modes(scenario, scored):
    report, _ = scored
    shares = report.cluster_shares
    assert shares is not None
    n = shares.counts()
    assert n.lacking > 0 and n.covered > 0 and n.batch_only > 0  # the scenario has all three kinds
    assert n.real == sum(1 for r in shares.clusters if r.reference_count > 0) == n.covered + n.lacking + n.untestable
    line = coverage_line(shares)
    assert line is not None and f"{n.covered} of {n.real} real modes covered, {n.lacking} lacking" in line

    seeds = cli(scenario, "seeds", str(scenario["batch"]), "--reference", str(scenario["real"]))
    summary = seeds.stderr.strip().splitlines()[0]
    assert summary.startswith(line + "; ")  # the same line, word for word: the same counts
    assert len(seeds.stdout.splitlines()) == n.lacking  # one JSONL line per lacking mode

    out = scenario["root"] / "explore.json"
    cli(scenario, "explore", str(scenario["batch"]), "--reference", str(scenario["real"]), "--json", str(out),
        "--no-downloads")
    exploration = json.loads(out.read_text())
    explored = Report.model_validate(exploration["report"]).cluster_shares
    assert explored is not None and explored.counts() == n
    page = exploration["clusters"]
    assert flag_counts([c["flag"] for c in page]) == flag_counts([r.flag for r in shares.clusters])
    assert sum(1 for c in page if c["reference_size"]) == n.real


def test_coverage_line_says_the_lacking_modes_hold_the_real_share(scored):
    report, _ = scored
    shares = report.cluster_shares
    n = shares.counts()
    line = coverage_line(shares)
    assert "holding" not in line and "the batch lacks" not in line
    assert f"the {n.lacking} lacking modes hold {n.lacking_share:.1%} of the real data" in line
    worst = max((r for r in shares.clusters if r.flag in ("missing", "under")),
                key=lambda r: (r.reference_share - r.batch_share, -r.cluster_id))
    assert f"most lacking: mode {mode_ref(worst.cluster_id)}" in line  # joint modes are M<id>, a name may follow


def test_the_table_tells_the_two_id_spaces_apart_and_lists_every_lacking_mode_on_request(scenario, scored):
    report, _ = scored
    shares = report.cluster_shares
    lacking = [r.cluster_id for r in shares.clusters if r.flag in ("missing", "under")]
    args = ["score", str(scenario["batch"]), "--reference", str(scenario["real"]), "--no-record"]
    table = cli(scenario, *args).stdout
    assert "Largest clusters (the batch clustered alone)" in table
    hidden = len(shares.clusters) - 10
    assert hidden > 0, "the scenario must have more modes than the table shows"
    hidden_lacking = sum(1 for r in shares.clusters[10:] if r.flag in ("missing", "under"))
    assert f"... and {hidden} more modes ({hidden_lacking} of them lacking): rerun with --all-modes" in table
    assert "model local/smollm2" not in table and "prompt " not in table  # text modes: no LLM ran
    assert re.search(r"embeddings computed \d+\s+\(cache hits\s+\d+\)", table)

    markdown = cli(scenario, *args, "--all-modes", "--format", "markdown").stdout
    modes_table = markdown.split("## Modes versus the reference")[1].split("\n\n## ")[0]
    listed = re.findall(r"^\| (M\d+) \|", modes_table, flags=re.M)
    assert listed == [mode_ref(r.cluster_id) for r in shares.clusters]  # every mode, in the JSON's order
    assert {mode_ref(c) for c in lacking} <= set(listed) and "more modes" not in modes_table
    assert "| mode | name |" in modes_table and "example text |" in modes_table  # named for what they hold
    largest = markdown.split("## Largest clusters")[1].split("\n\n## ")[0]
    assert "| cluster | size | share | example text | example ids |" in largest
    assert not re.search(r"^\| M\d+ \|", largest, flags=re.M)  # the batch's own clusters stay bare numbers
    header = markdown.split("## Largest clusters")[0]
    assert "local/smollm2" not in header and "prompt sha256" not in header


def test_a_cold_run_reports_no_embedding_cache_hits_and_a_warm_one_only_hits(scenario, scored):
    report, _ = scored
    assert report.timings.embedding_calls > 0
    assert report.timings.embedding_cache_hits == 0  # the metrics re-reading this run's own vectors are no hits
    again = cli(scenario, "score", str(scenario["batch"]), "--reference", str(scenario["real"]),
                "--metrics", "none", "--format", "json", "--no-record")
    warm = json.loads(again.stdout)["timings"]
    assert warm["embedding_calls"] == 0 and warm["embedding_cache_hits"] > 0


def test_library_chatter_goes_into_the_reports_warnings_not_stderr(scored):
    report, stderr = scored
    faiss = [w for w in report.warnings if w.startswith("mauve: faiss k-means said 'WARNING clustering")]
    assert len(faiss) == 1, report.warnings
    assert "WARNING clustering" not in stderr and "training points" not in stderr


def test_a_python_warning_and_too_few_examples_are_warned_in_the_report(scenario):
    root = scenario["root"]
    (root / "loud_plugin.py").write_text(WARNING_PLUGIN)
    env = {**scenario["env"], "CLUSTERDIV_PLUGINS": "fake_llm,loud_plugin"}
    one = write_jsonl(root / "one.jsonl", [{"id": "x", "text": "book a flight to paris"}])
    result = cli(scenario, "score", str(one), "--format", "json", "--no-record", env=env)
    report = json.loads(result.stdout)
    assert "UserWarning: the loud metric is only a test" in report["warnings"]
    assert "loud metric" not in result.stderr
    few = [w for w in report["warnings"] if w.startswith("only 1 scored example:")]
    assert len(few) == 1 and f"score {report['score']:.3f}" in few[0]
