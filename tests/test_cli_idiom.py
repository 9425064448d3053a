"""One CLI idiom: one output-format enum, one error wrapper, no cli <-> cli_common cycle, and `demo`."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

PACKAGE = Path(__file__).resolve().parents[1] / "clusterdiv"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def test_cli_common_never_imports_cli_and_commands_use_the_shared_wrapper():
    assert not {"clusterdiv.cli", "clusterdiv.cli.root"} & _imported_modules(PACKAGE / "cli" / "common.py")
    for module in sorted((PACKAGE / "cli" / "commands").glob("*.py")):
        source = module.read_text(encoding="utf-8")
        assert "clusterdiv.cli import" not in source, module.name
        assert "clusterdiv.cli.root" not in _imported_modules(module), module.name
    enums = [p.name for p in PACKAGE.rglob("*.py")
             if "class OutputFormat(" in p.read_text(encoding="utf-8")]
    assert enums == ["common.py"]


def test_error_wrapper_maps_exit_code_and_adds_the_flag(capsys):
    from clusterdiv.cli.common import handle_errors
    from clusterdiv.core.errors import InputError

    with pytest.raises(typer.Exit) as exited, handle_errors(debug=False):
        raise InputError("the drop share must be between 0 and 1", option="drop_share")
    assert exited.value.exit_code == 2
    assert "error: the drop share must be between 0 and 1 (--drop-share)" in capsys.readouterr().err
    with pytest.raises(typer.Exit) as exited, handle_errors(debug=False):
        raise RuntimeError("boom")
    assert exited.value.exit_code == 1 and "RuntimeError: boom" in capsys.readouterr().err


def test_demo_scores_both_bundled_sets_and_says_what_to_try(cache_dir):
    from clusterdiv.cli import app

    result = CliRunner().invoke(app, ["demo", "--format", "json", "--no-progress", "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    real, synthetic = payload["reports"]["real"], payload["reports"]["synthetic_collapsed"]
    assert real["n_samples"] == synthetic["n_samples"] == 48
    assert real["modes_from"]["kind"] == "text" and real["timings"]["llm_calls"] == 0
    assert real["score_normalized"] > synthetic["score_normalized"]
    assert any(step.startswith("clusterdiv score ") and "--reference" in step for step in payload["next"])
