"""A metric plugin for tests, registered through the real plugin path (CLUSTERDIV_PLUGINS).

`question_share`: the share of texts ending in "?". A higher share means the batch leans towards
one form, so it is declared LESS_DIVERSE (-1): history and `check` must read that direction from
the registry rather than assume "higher is better".
"""

from __future__ import annotations


def question_share(inputs) -> float:
    if not inputs.texts:
        raise ValueError("no texts")
    return sum(t.rstrip().endswith("?") for t in inputs.texts) / len(inputs.texts)


def register(registry) -> None:
    registry.register_metric("question_share", question_share, group="lexical",
                             meaning="share of texts that end in '?' (higher = more uniform form)", direction=-1)
