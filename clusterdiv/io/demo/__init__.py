"""Two tiny built-in datasets for the walkthrough notebook and quick experiments.

* ``real``: 48 short requests to an assistant, 12 intents x 4, worded freely (the "real" data).
* ``synthetic_collapsed``: 48 examples from a generator that collapsed: most are paraphrases of
  three head intents (weather, alarm, music), a few tail intents appear once, the rest not at all.

Each JSONL line is ``{"id", "text", "intent"}``; ``intent`` is the gold label, loaded as
``Example.label``. The pipeline never reads it, so it can be used to check what clustering found.
The texts were written for this package (no third-party dataset).
"""

from __future__ import annotations

from pathlib import Path

from clusterdiv.core.records import Example

__all__ = ["DATASETS", "load", "path"]

DATASETS: tuple[str, ...] = ("real", "synthetic_collapsed")
_DIR = Path(__file__).parent


def path(name: str) -> Path:
    """The file of a built-in dataset, by name (``"real"``; the ``.jsonl`` suffix is optional)."""
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else name
    if stem not in DATASETS:
        raise ValueError(f"unknown demo dataset {name!r}; choose from: {', '.join(DATASETS)}")
    return _DIR / f"{stem}.jsonl"


def load(name: str) -> list[Example]:
    """The dataset's examples with their ids, and the gold intent as ``label``."""
    from clusterdiv.io.corpus import load_corpus

    return list(load_corpus(path(name), id_field="id", label_field="intent").examples)
