"""Pinned reports: `score`, `compare` and `explore` JSON on a small inline corpus, against golden files.

The golden files under tests/golden/ were written by the code as it was before the mode space and
run context were introduced (issue 14), so a refactor that changes any number, id, order or label
of a report fails here. Only `timings` (wall clock and call counts) are left out. Floats are
rounded to 6 decimals so the comparison is about behaviour, not the last bit of a BLAS sum.

The corpus is small on purpose (fast, and under the explorer's UMAP threshold, so the map is the
deterministic PCA one). `fake/picky` fails extraction on texts containing "#junk", so the failure
paths (failed rows in batch and reference, a cluster with an unnamed member) are pinned too. One
text is in both the batch and the reference, and one in two compared batches, so a row's group is
pinned separately from its id.

Regenerate (only when a change of behaviour is intended): CLUSTERDIV_REGEN_GOLDEN=1 pytest this file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from clusterdiv.llm.structured import LLMSettings
from clusterdiv.modes.config import ScoreConfig
from clusterdiv.tasks.compare import compare
from clusterdiv.tasks.explore import explore
from clusterdiv.tasks.score import score

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("CLUSTERDIV_REGEN_GOLDEN") == "1"

BATCH = [
    "what's the weather in paris tomorrow",
    "what's the weather in tokyo tomorrow",
    "will it rain in oslo today",
    "set an alarm for 6am",
    "set an alarm for noon",
    "play some jazz music",
    "play some rock music",
    "tell me a joke about cats #junk",
]
REFERENCE = [
    "what's the weather in paris tomorrow",  # also in the batch: same id, other group
    "set an alarm for midnight",
    "book a flight to lima next friday",
    "book a flight to cairo next friday",
    "how do i cook pancakes",
    "give me a recipe for sushi #junk",
]
OTHER = [
    "play some jazz music",  # also in BATCH: same id, other batch
    "how many calories are in tacos",
    "how many calories are in sushi",
    "translate thank you into french",
    "translate thank you into german",
    "start a 10 minute countdown",
]


def criteria_config(**extra: Any) -> ScoreConfig:
    return ScoreConfig(llm=LLMSettings(model="fake/picky"), representation={"kind": "criteria"},
                       bootstrap=30, **extra)


def text_config(**extra: Any) -> ScoreConfig:
    return ScoreConfig(llm=LLMSettings(model="fake/echo"), bootstrap=30, **extra)


def _strip(value: Any) -> Any:
    """Drop every `timings` key (at any depth) and round floats."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "timings"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


def check(name: str, model: Any) -> None:
    data = _strip(json.loads(model.model_dump_json()))
    path = GOLDEN / f"{name}.json"
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert data == expected, f"{name}: report differs from {path} (see the module docstring)"


@pytest.fixture(autouse=True)
def _fake(fake_llm):
    return fake_llm


def test_score_criteria_with_reference(cache):
    check("score_criteria_reference", score(BATCH, config=criteria_config(metrics="all"), cache=cache,
                                            reference=REFERENCE))


def test_score_text(cache):
    check("score_text", score(BATCH + OTHER, config=text_config(metrics="lexical,semantic"), cache=cache))


def test_compare_criteria_with_reference(cache):
    report = compare({"gen-a": BATCH, "gen-b": OTHER}, config=criteria_config(metrics="lexical"),
                     cache=cache, reference=REFERENCE, permutations=50)
    check("compare_criteria_reference", report)


def test_compare_text(cache):
    report = compare({"gen-a": BATCH, "gen-b": OTHER}, config=text_config(metrics="none"), cache=cache,
                     permutations=50)
    check("compare_text", report)


def test_explore_criteria_with_reference(cache):
    check("explore_criteria_reference", explore(BATCH, reference=REFERENCE,
                                                config=criteria_config(metrics="lexical"), cache=cache))


def test_explore_text(cache):
    check("explore_text", explore(BATCH, config=text_config(metrics="none"), cache=cache, name=False))
