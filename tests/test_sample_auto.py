"""`sample="auto"`: the headline of a large batch from a seeded sample grown to a stated interval width.

The size limits are lowered for the test (AUTO_SAMPLE_ABOVE / AUTO_SAMPLE_START), so a 400-text
corpus takes the path a 100,000-text one would; the text representation makes no LLM call. Why
the real thresholds are what they are is measured in eval/sample_auto_eval.py, not here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from clusterdiv.core.errors import InputError
from clusterdiv.modes.config import ScoreConfig
from clusterdiv.tasks import score as score_task
from clusterdiv.tasks.score import sampling_policy, score

TOPICS = ["weather in paris", "an alarm at six", "jazz on the radio", "a flight to lima", "pancake recipes",
          "my card was declined", "translate thank you", "a ten minute timer", "calories in tacos",
          "reset my password", "the nearest pharmacy", "tomorrow's meetings", "a joke about cats",
          "the score of the game", "how tall is everest", "book a table for two", "order more printer ink",
          "what time is it in tokyo", "turn off the lights", "track my parcel"]
FRAMES = ["tell me about {}", "can you help with {}", "i need {} now", "quick question: {}", "{} please",
          "what about {}", "hey, {}", "any news on {}", "remind me of {}", "show me {}"]
CORPUS = [f"{frame.format(topic)} #{k}" for k in range(2) for topic in TOPICS for frame in FRAMES]  # 400


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(score_task, "AUTO_SAMPLE_ABOVE", 200)
    monkeypatch.setattr(score_task, "AUTO_SAMPLE_START", 80)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory):
    """One cache for the module: the corpus is embedded once, every later run reads it."""
    from clusterdiv.core.cache import ModelCache

    with ModelCache(tmp_path_factory.mktemp("sample_auto_cache")) as store:
        yield store


def test_policy_reads_the_setting_and_the_size(small_limits):
    assert sampling_policy(None, 200) == "all" and sampling_policy(None, 201) == "auto"
    assert sampling_policy(None, 201, bootstrap=0) == "all"  # nothing to grow against: a full pass
    assert sampling_policy(50, 201) == "fixed" and sampling_policy(400, 201) == "all"
    assert sampling_policy("auto", 10) == "auto" and sampling_policy("all", 10**6) == "all"


def test_auto_grows_a_nested_sample_until_the_interval_is_narrow_enough(small_limits, shared_cache):
    config = ScoreConfig(metrics="none", sample_width=0.03)
    report = score(CORPUS, config=config, cache=shared_cache)
    s = report.sampling
    assert s.policy == "auto" and s.population == len(CORPUS) and s.target_width == 0.03
    assert s.scored == report.n_input == report.n_samples < len(CORPUS)
    sizes = [step.scored for step in s.steps]
    assert sizes[0] == 80 and len(sizes) >= 2 and sizes == sorted(sizes) and sizes[-1] == s.scored
    # it stopped at the first size whose interval met the target, not before and not after
    assert all(step.ci95_width > 0.03 for step in s.steps[:-1])
    assert s.steps[-1].ci95_width <= 0.03
    lo, hi = report.ci95_normalized
    assert round(hi - lo, 6) == s.steps[-1].ci95_width
    # the same seed gives the same sample, modes and score
    again = score(CORPUS, config=config, cache=shared_cache)
    assert again.model_dump(exclude={"timings"}) == report.model_dump(exclude={"timings"})


def test_the_default_above_the_limit_is_auto_and_all_scores_everything(small_limits, shared_cache):
    default = score(CORPUS, config=ScoreConfig(metrics="none"), cache=shared_cache)
    assert default.sampling.policy == "auto" and default.sampling.scored < len(CORPUS)
    full = score(CORPUS, config=ScoreConfig(metrics="none", sample="all"), cache=shared_cache)
    assert full.sampling.policy == "all" and full.n_input == full.sampling.scored == len(CORPUS)
    below = score(CORPUS[:200], config=ScoreConfig(metrics="none"), cache=shared_cache)
    assert below.sampling.policy == "all" and below.n_input == 200
    fixed = score(CORPUS, config=ScoreConfig(metrics="none", sample=150), cache=shared_cache)
    assert fixed.sampling.policy == "fixed" and fixed.n_input == 150 and fixed.config.sample == 150


def test_auto_by_name_without_a_bootstrap_is_an_error_naming_the_setting(shared_cache):
    with pytest.raises(InputError, match="bootstrap") as info:
        score(CORPUS[:50], config=ScoreConfig(metrics="none", sample="auto", bootstrap=0), cache=shared_cache)
    assert info.value.option == "bootstrap"


def test_cli_rejects_a_bad_sample_at_parse_time(tmp_path, subprocess_env):
    path = tmp_path / "t.txt"
    path.write_text("a\nb\nc\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "clusterdiv.cli", "score", str(path), "--sample", "most"],
                          env={**subprocess_env, "COLUMNS": "250"}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Invalid value for '--sample': Input should be a positive number, auto or all" in proc.stderr
