"""Pinned reports: `score`, `compare` and `explore` JSON on a small inline corpus, against golden files.

The golden files under tests/golden/ were written by the code as it was before the mode space and
run context were introduced (issue 14), so a refactor that changes any number, id, order or label
of a report fails here. Only `timings` (wall clock and call counts) are left out. Floats are
rounded to 6 decimals in the files and compared within 2e-6, so the comparison is about behaviour,
not the last bit of a BLAS sum.

The corpus is small on purpose (fast, and under the explorer's UMAP threshold, so the map is the
deterministic PCA one). `fake/picky` fails extraction on texts containing "#junk", so the failure
paths (failed rows in batch and reference, a cluster with an unnamed member) are pinned too. One
text is in both the batch and the reference, and one in two compared batches, so a row's group is
pinned separately from its id.

Regenerate (only when a change of behaviour is intended): CLUSTERDIV_REGEN_GOLDEN=1 pytest this file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
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


def _differences(got: Any, want: Any, where: str = "") -> Iterator[str]:
    """Paths where two stripped reports differ; floats within 2e-6 are equal.

    Why not `==` on the rounded values: a float that sits at a rounding edge (0.0538275) rounds to
    0.053827 on one machine and 0.053828 on another, which is BLAS noise, not a change of behaviour.
    """
    if isinstance(got, float) or isinstance(want, float):
        if not (isinstance(got, int | float) and isinstance(want, int | float) and math.isclose(got, want, abs_tol=2e-6)):
            yield f"{where}: {got!r} != {want!r}"
    elif isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want), key=str):
            if key not in got or key not in want:
                yield f"{where}.{key}: only in {'the golden file' if key in want else 'the report'}"
            else:
                yield from _differences(got[key], want[key], f"{where}.{key}")
    elif isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            yield from _differences(g, w, f"{where}[{i}]")
    elif got != want:
        yield f"{where}: {got!r} != {want!r}"


def check(name: str, model: Any) -> None:
    data = _strip(json.loads(model.model_dump_json()))
    path = GOLDEN / f"{name}.json"
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    differences = list(_differences(data, expected))
    assert not differences, f"{name}: report differs from {path} (see the module docstring): {differences[:5]}"


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
    check("explore_text", explore(BATCH, config=text_config(metrics="none"), cache=cache))
