"""The public API: everything importable from `clusterdiv`, lazily, and `import clusterdiv` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "litellm", "sklearn")


def test_import_clusterdiv_imports_no_torch_litellm_or_sklearn():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import clusterdiv"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "clusterdiv" in imported
    top_level = {name.split(".")[0] for name in imported}
    assert not top_level & set(HEAVY), sorted(top_level & set(HEAVY))


def test_public_names_resolve():
    import clusterdiv

    for name in ("score", "compare", "explore", "audit_tail", "mix", "lineage", "drift", "load_examples",
                 "Report", "ScoreConfig", "LLMSettings", "ClusterParams", "Representation", "RunConfig"):
        assert name in clusterdiv.__all__ and callable(getattr(clusterdiv, name)), name
    import clusterdiv.tasks.compare  # noqa: F401  (importing the task modules leaves the public functions alone)
    import clusterdiv.tasks.explore  # noqa: F401

    assert callable(clusterdiv.compare) and clusterdiv.compare.__module__ == "clusterdiv"
    assert callable(clusterdiv.explore) and clusterdiv.explore.__module__ == "clusterdiv"
    from clusterdiv.tasks.anchoring.mix import mix_budget

    assert clusterdiv.mix is mix_budget


def test_load_examples_accepts_texts_records_dataframes_and_datasets(tmp_path):
    import clusterdiv

    texts = ["will it rain", "set an alarm"]
    from_texts = clusterdiv.load_examples(texts)
    assert [e.text for e in from_texts] == texts
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "will it rain"}\n{"text": "set an alarm"}\n', encoding="utf-8")
    assert [e.id for e in clusterdiv.load_examples(path)] == [e.id for e in from_texts]  # same id scheme
    records = clusterdiv.load_examples([{"prompt": t, "uid": i, "y": "a"} for i, t in enumerate(texts)],
                                       id_field="uid", label_field="y")
    assert [(e.id, e.text, e.label) for e in records] == [("0", "will it rain", "a"), ("1", "set an alarm", "a")]
    from clusterdiv.core.errors import CorpusError

    with pytest.raises(CorpusError):
        clusterdiv.load_examples([])
    with pytest.raises(CorpusError):
        clusterdiv.load_examples(42)
    pandas = pytest.importorskip("pandas")
    frame = clusterdiv.load_examples(pandas.DataFrame({"text": texts}))
    assert [e.id for e in frame] == [e.id for e in from_texts]
    datasets = pytest.importorskip("datasets")
    dataset = clusterdiv.load_examples(datasets.Dataset.from_dict({"instruction": texts}))
    assert [e.text for e in dataset] == texts


def test_architecture_doc_names_only_modules_that_exist():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*(?:\.py|/))`", doc))
    assert {"tasks/score.py", "metrics/", "cli/commands/", "modes/modespace.py"} <= named
    package = root / "clusterdiv"
    missing = [n for n in named if not (package / n).exists() and not (root / n).exists()]
    assert not missing, missing
    packages = {p.name + "/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= named, sorted(packages - named)  # every top-level package is on the page
