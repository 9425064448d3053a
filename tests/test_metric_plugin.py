"""A set metric added by a plugin (the real CLUSTERDIV_PLUGINS path) reaches score, history and track."""

from __future__ import annotations

import json

from test_cli import run_cli, write_jsonl

TEXTS = ["will it rain tomorrow?", "set an alarm for six", "play some jazz", "tell me a joke?",
         "what is the weather in paris?", "wake me at seven", "play the beatles", "another joke please"]


def plugin_env(subprocess_env: dict[str, str], tmp_path) -> dict[str, str]:
    env = dict(subprocess_env)
    env["CLUSTERDIV_PLUGINS"] = "fake_llm,fake_metric_plugin"
    env["CLUSTERDIV_HISTORY_DB"] = str(tmp_path / "history.sqlite")
    return env


def test_plugin_metric_in_score_history_and_track(tmp_path, subprocess_env):
    env = plugin_env(subprocess_env, tmp_path)
    batch = write_jsonl(tmp_path / "batch.jsonl", [{"id": f"t{i}", "text": t} for i, t in enumerate(TEXTS)])

    scored = run_cli(["score", str(batch), "--format", "json", "--metrics", "lexical,question_share",
                      "--dataset", "plug"], env)
    assert scored.returncode == 0, scored.stderr
    metric = json.loads(scored.stdout)["metrics"]["question_share"]
    assert metric["value"] == 3 / 8 and metric["meaning"].startswith("share of texts that end in")

    tracked = run_cli(["track", "plug", "--min", "question_share=0.2", "--min", "distinct_1=0.1"], env)
    assert tracked.returncode == 0, tracked.stderr
    assert "question_share" in tracked.stdout

    history = run_cli(["history", "plug", "--format", "json", "--metrics", "question_share"], env)
    assert history.returncode == 0, history.stderr
    payload = json.loads(history.stdout)
    assert payload["runs"][0]["metrics"]["question_share"]["value"] == 3 / 8
    assert payload["tracking"]["thresholds"]["question_share"]["min"] == 0.2



def test_plugin_metric_direction_and_default_selection_come_from_the_registry(request):
    import fake_metric_plugin

    from clusterdiv.history.trend import adverse_change
    from clusterdiv.llm.plugins import get_registry
    from clusterdiv.metrics import registry

    fake_metric_plugin.register(get_registry())
    request.addfinalizer(lambda: registry.unregister_metric("question_share"))
    assert "question_share" in registry.resolve_selection(None)
    assert "question_share" not in registry.resolve_selection("lexical")  # a group means its built-ins
    assert registry.direction("question_share") == -1
    assert registry.direction("self_bleu") == -1 and registry.direction("vendi") == 1
    assert adverse_change("question_share", 0.6, 0.5) > 0  # a rise is a move towards less diversity
    assert adverse_change("vendi", 0.6, 0.5) < 0
    values = registry.compute_set_metrics(["a?", "b", "c?", "d"], select={"question_share"})
    assert values["question_share"].value == 0.5
    undefined = registry.compute_set_metrics([], select={"question_share"})["question_share"]
    assert undefined.value is None and undefined.details["reason"] == "no texts"
    plan = registry.select_metrics("question_share,vendi", has_reference=False)
    assert plan.selected == {"question_share", "vendi"} and plan.needs_embeddings
