"""One CLI idiom: one output-format enum, one error wrapper, the shared options on every command, no
cli <-> cli_common cycle, and `demo`."""

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


def _commands() -> dict[str, set[str]]:
    """Every leaf command of the CLI (`cache info` included) and the flags it takes."""
    import click

    from clusterdiv.cli import app

    def walk(group: click.Group, prefix: str):
        for name, command in group.commands.items():
            if isinstance(command, click.Group) or hasattr(command, "commands"):  # typer's own group class
                yield from walk(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", {flag for p in command.params for flag in (*p.opts, *p.secondary_opts)}

    return dict(walk(typer.main.get_command(app), ""))


BATCH_OPTIONS = {"--text-field", "--skip-invalid", "--cache-dir", "--progress", "--no-progress", "--debug"}
"""What every command that reads a batch takes, meaning the same on each (issue 30 row 29: `audit-tail`,
`mix`, `lineage` and `drift` once refused `--no-progress`)."""


def test_every_command_takes_the_shared_options():
    commands = _commands()
    readers = {name for name, flags in commands.items() if "--text-field" in flags}
    assert readers >= {"score", "metrics", "check", "compare", "explore", "select", "seeds", "audit-tail", "mix",
                       "lineage", "drift"}, sorted(readers)
    lacking = {name: sorted(BATCH_OPTIONS - commands[name]) for name in sorted(readers)
               if BATCH_OPTIONS - commands[name]}
    assert not lacking, lacking
    # `version` prints a constant and cannot fail; everything else shows its traceback on --debug
    no_debug = sorted(name for name, flags in commands.items() if "--debug" not in flags and name != "version")
    assert not no_debug, no_debug
    with_progress = sorted(name for name, flags in commands.items() if "--progress" in flags)
    assert all("--no-progress" in commands[name] for name in with_progress)


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
