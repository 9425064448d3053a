"""The notebooks in notebooks/ run top to bottom, and the built-in demo data is what they rely on.

Each notebook is executed in a fresh kernel (a temp copy, a temp cache) with the REAL local model:
that is the point of a walkthrough whose outputs readers see on GitHub. The kernel is a subprocess,
so the environment it needs is passed explicitly, and its kernelspec is written on the fly for this
interpreter (no `python -m ipykernel install`, no dependence on kernels installed elsewhere).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

import clusterdiv.io.demo

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WALKTHROUGH = ROOT / "notebooks" / "investigate_collapsed_batch.ipynb"
CELL_TIMEOUT_S = 600
CONCLUSION = re.compile(
    r"The synthetic batch scores (?P<synthetic>[0-9.]+) normalised .*? against (?P<real>[0-9.]+) \(.*?\) for the real set"
)


def execute_notebook(source: Path, workdir: Path, env_overrides: dict[str, str | None]):
    """Run a copy of `source` in `workdir` with this interpreter's ipykernel; returns the executed notebook.

    `env_overrides` are applied to a copy of os.environ (None removes a variable). Raises
    nbclient's CellExecutionError when a cell fails, naming the cell and the traceback.
    """
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    copy = workdir / source.name
    shutil.copyfile(source, copy)
    nb = nbformat.read(copy, as_version=4)
    kernels = workdir / "kernels"
    write_kernel_spec(kernels / "python3")  # argv = [sys.executable, "-m", "ipykernel_launcher", ...]
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    env = dict(os.environ)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    # the kernel imports this checkout's clusterdiv, whatever else is installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, record_timing=False,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute(env=env)
    return nb


def cell_text(cell) -> str:
    """Everything a code cell printed (streams and text/plain results)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def check_executed(nb) -> str:
    """Every code cell ran, in order, and none errored; returns everything the cells printed."""
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [out for c in code_cells for out in c.get("outputs", []) if out.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    assert [c.execution_count for c in code_cells] == list(range(1, len(code_cells) + 1)), \
        "code cells were not all executed, in order"
    return "".join(cell_text(c) for c in code_cells)


def check_walkthrough(nb) -> None:
    """The collapsed-batch walkthrough drew its chart and concluded that the batch is less diverse."""
    outputs = [out for c in nb.cells if c.cell_type == "code" for out in c.get("outputs", [])]
    assert any("image/png" in out.get("data", {}) for out in outputs), "no chart in the outputs"
    found = CONCLUSION.search(check_executed(nb))
    assert found, "the conclusions cell did not print the scores"
    assert float(found["synthetic"]) < float(found["real"]), found.group(0)


SPECIFIC_CHECKS = {"investigate_collapsed_batch": check_walkthrough}


def check_notebook(path: Path, nb) -> str:
    printed = check_executed(nb)
    if path.stem in SPECIFIC_CHECKS:
        SPECIFIC_CHECKS[path.stem](nb)
    return printed


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_the_real_local_model(notebook: Path, tmp_path: Path):
    nb = execute_notebook(notebook, tmp_path, {
        "CLUSTERDIV_CACHE_DIR": str(tmp_path / "cache"),
        "CLUSTERDIV_NOTEBOOK_MODEL": None,  # the notebook's default: local/smollm2
        "CLUSTERDIV_PLUGINS": None,  # conftest registers the fake LLM for in-process tests only
        "CLUSTERDIV_HISTORY_DB": str(tmp_path / "history.sqlite"),
        "MPLBACKEND": None,
    })
    printed = check_notebook(notebook, nb)
    if notebook != WALKTHROUGH:
        return
    assert "model local/smollm2" in printed
    # a cold cache: every example went to the model (96 texts, retries may add a few calls)
    assert re.search(r"^(9[6-9]|1\d\d) LLM calls, 0 cache hits", printed, re.MULTILINE), printed[:2000]


def test_walkthrough_notebook_runs_with_the_fake_model(tmp_path: Path):
    """Fast smoke run of the walkthrough: the fake model through the env override, same cells and checks."""
    notebook = WALKTHROUGH
    nb = execute_notebook(notebook, tmp_path, {
        "CLUSTERDIV_CACHE_DIR": str(tmp_path / "cache"),
        "CLUSTERDIV_NOTEBOOK_MODEL": "fake/echo",
        "CLUSTERDIV_PLUGINS": "fake_llm",
        "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")] if p),
        "CLUSTERDIV_HISTORY_DB": str(tmp_path / "history.sqlite"),
        "MPLBACKEND": None,
    })
    printed = check_notebook(notebook, nb)
    assert "model fake/echo" in printed and "96 LLM calls, 0 cache hits" in printed


def test_committed_notebooks_carry_outputs_from_the_real_model():
    """Readers on GitHub see a real run: every code cell executed, in order (the walkthrough: default model)."""
    import nbformat

    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        printed = check_notebook(path, nb)
        assert path.stat().st_size < 1_000_000, f"{path.name} is too large to read on GitHub"
        if path == WALKTHROUGH:
            assert "model local/smollm2" in printed, "refresh it with the default model"


def test_extract_criteria_works_inside_a_running_event_loop(fake_llm, cache):
    """A Jupyter kernel runs an event loop; the synchronous stage must still work there (it used to raise)."""
    import asyncio

    from clusterdiv.core.prompts import PromptTemplate
    from clusterdiv.llm.structured import LLMSettings
    from clusterdiv.modes.extract import extract_criteria

    examples = clusterdiv.io.demo.load("real")[:3]

    async def inside_a_loop():
        return extract_criteria(examples, model=LLMSettings(model="fake/echo"), cache=cache,
                                prompt=PromptTemplate.load())

    extractions = asyncio.run(inside_a_loop())
    assert [e.example_id for e in extractions] == [e.id for e in examples]
    assert all(e.ok for e in extractions) and sum(fake_llm.calls.values()) == 3


# ---------------------------------------------------------------- built-in demo data


@pytest.mark.parametrize("name", clusterdiv.io.demo.DATASETS)
def test_demo_sets_load_with_unique_ids_and_gold_intents(name: str):
    examples = clusterdiv.io.demo.load(name)
    assert clusterdiv.io.demo.path(name) == clusterdiv.io.demo.path(f"{name}.jsonl")
    assert clusterdiv.io.demo.path(name).parent == Path(clusterdiv.io.demo.__file__).parent  # inside the package
    assert 40 <= len(examples) <= 60  # the notebook's budget with the real model is ~100 examples
    assert len({e.id for e in examples}) == len(examples)
    assert len({e.text.lower() for e in examples}) == len(examples)  # no verbatim duplicates
    assert all(e.label for e in examples)


def test_demo_real_set_is_balanced_over_twelve_intents_with_a_tail():
    counts = Counter(e.label for e in clusterdiv.io.demo.load("real"))
    assert len(counts) == 12 and set(counts.values()) == {4}
    assert {"report_lost_card", "translate", "cancel_subscription"} <= set(counts)


def test_demo_synthetic_set_collapsed_onto_head_intents():
    real = Counter(e.label for e in clusterdiv.io.demo.load("real"))
    synthetic = Counter(e.label for e in clusterdiv.io.demo.load("synthetic_collapsed"))
    head = synthetic.most_common(3)
    assert {intent for intent, _ in head} == {"weather", "alarm", "play_music"}
    assert sum(n for _, n in head) >= 0.8 * sum(synthetic.values())
    assert set(synthetic) <= set(real)  # the same task, not a different one
    tail = {intent: n for intent, n in synthetic.items() if intent not in dict(head)}
    assert tail and all(n == 1 for n in tail.values())  # tail intents once at most ...
    assert {"report_lost_card", "translate", "cancel_subscription"}.isdisjoint(synthetic)  # ... or absent


def test_demo_unknown_name_is_refused():
    with pytest.raises(ValueError, match="real, synthetic_collapsed"):
        clusterdiv.io.demo.path("nope")


def refresh(paths: list[Path]) -> None:
    """Re-execute notebooks in place with the default model, keeping their outputs for readers.

    Uses your cache (`CLUSTERDIV_CACHE_DIR` or the user cache), so a refresh after the first is cheap.
    """
    import tempfile

    import nbformat

    for path in paths:
        with tempfile.TemporaryDirectory() as workdir:
            nb = execute_notebook(path, Path(workdir), {
                "CLUSTERDIV_NOTEBOOK_MODEL": None, "CLUSTERDIV_PLUGINS": None, "MPLBACKEND": None,
            })
        check_notebook(path, nb)
        nbformat.write(nb, path)
        print(f"refreshed {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":  # python tests/test_notebooks.py --refresh [NOTEBOOK ...]
    if sys.argv[1:2] != ["--refresh"]:
        sys.exit("usage: python tests/test_notebooks.py --refresh [NOTEBOOK ...]")
    refresh([Path(p).resolve() for p in sys.argv[2:]] or NOTEBOOKS)
