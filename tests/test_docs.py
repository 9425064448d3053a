"""The docs cannot drift from the code (issue 33 item 3).

README.md stays short; `mkdocs build --strict` builds the site with no broken link, anchor or
unnavigated page, its API page covers every public name and its CLI page every command; and every
`clusterdiv` command and Python block of README.md and docs/getting-started.md runs, in order, on the
bundled demo data (`clusterdiv demo --copy-to .` is the first of them), with the output the docs
show for the quick start compared line by line with what the commands print now.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
# the width the docs' console output was recorded at
COLUMNS = "110"


def _hook():
    """docs/hooks/readme.py, the include mechanism the site uses, loaded by path (docs/ is no package)."""
    spec = importlib.util.spec_from_file_location("docs_readme_hook", ROOT / "docs" / "hooks" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks(markdown: str) -> list[tuple[str, str]]:
    return [(m["lang"], m["body"]) for m in FENCE.finditer(markdown)]


def _doc_texts() -> list[str]:
    hook = _hook()
    return [README.read_text(encoding="utf-8"),
            hook.expand(GETTING_STARTED.read_text(encoding="utf-8"), "getting-started.md")]


def _commands(body: str) -> list[list[str]]:
    """A bash block's `clusterdiv ...` commands as argv lists: comments dropped, `\\` lines joined."""
    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv and argv[0] == "clusterdiv":
            commands.append(argv[1:])
    return commands


def _docs_program() -> tuple[list[list[str]], list[tuple[str, str | None]]]:
    """Every command and Python block (with the ```text block after it, its shown output), in page order."""
    commands: list[list[str]] = []
    snippets: list[tuple[str, str | None]] = []
    for text in _doc_texts():
        blocks = _blocks(text)
        for i, (lang, body) in enumerate(blocks):
            if lang == "bash":
                commands += [c for c in _commands(body) if c not in commands]
            elif lang == "python":
                shown = blocks[i + 1][1] if i + 1 < len(blocks) and blocks[i + 1][0] == "text" else None
                if (body, shown) not in snippets:
                    snippets.append((body, shown))
    return commands, snippets


def _shown_sessions() -> list[tuple[list[str], list[str]]]:
    """The quick start's console excerpts: each `$ clusterdiv ...` with the lines shown under it."""
    sessions: list[tuple[list[str], list[str]]] = []
    quick_start = _hook().section(README.read_text(encoding="utf-8"), "quick-start")
    for lang, body in _blocks(quick_start):
        if lang != "console":
            continue
        for line in body.splitlines():
            if line.startswith("$ clusterdiv "):
                sessions.append((shlex.split(line[2:])[1:], []))
            elif sessions and line.strip() and not line.lstrip().startswith("…"):
                sessions[-1][1].append(line)
    return sessions


@pytest.fixture(scope="module")
def docs_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the docs' commands and snippets once, in a fresh folder, sharing one cache."""
    work = tmp_path_factory.mktemp("docs_run")
    env = dict(os.environ, CLUSTERDIV_CACHE_DIR=str(work / ".cache"),
               CLUSTERDIV_HISTORY_DB=str(work / ".history.sqlite"), COLUMNS=COLUMNS)
    env.pop("CLUSTERDIV_PLUGINS", None)  # the docs run the shipped package, not the tests' fake LLM
    commands, snippets = _docs_program()
    sessions = _shown_sessions()
    results = {}
    for argv in commands + [argv for argv, _ in sessions]:
        key = tuple(argv)
        if key not in results:
            results[key] = run_cli(argv, env, cwd=work)
    ran = [subprocess.run([sys.executable, "-c", code], env=env, cwd=work, capture_output=True, text=True,
                          timeout=240) for code, _ in snippets]
    return {"work": work, "commands": commands, "results": results, "snippets": snippets, "ran": ran,
            "sessions": sessions}


def _normalised(line: str) -> str:
    return " ".join(line.split())


def test_readme_is_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"


def test_the_docs_run_commands_and_python_and_start_from_the_demo(docs_run):
    commands = docs_run["commands"]
    assert commands and commands[0][:2] == ["demo", "--copy-to"], "the quick start must open with the demo"
    assert docs_run["snippets"], "README.md shows Python; none was found"
    assert {"score", "compare", "metrics"} <= {argv[0] for argv in commands}
    failed = [f"clusterdiv {shlex.join(argv)} -> exit {r.returncode}\n{r.stderr[-2000:]}"
              for argv, r in ((a, docs_run["results"][tuple(a)]) for a in commands) if r.returncode != 0]
    assert not failed, "\n\n".join(failed)
    for (code, _), result in zip(docs_run["snippets"], docs_run["ran"], strict=True):
        assert result.returncode == 0, f"{code}\n{result.stderr[-2000:]}"
    work = docs_run["work"]
    assert (work / "real.jsonl").is_file() and (work / "synthetic_collapsed.jsonl").is_file()
    report = json.loads((work / "report.json").read_text(encoding="utf-8"))
    assert report["n_samples"] == sum(1 for _ in (work / "synthetic_collapsed.jsonl").open(encoding="utf-8"))


def test_the_output_the_quick_start_shows_is_what_the_commands_print(docs_run):
    assert docs_run["sessions"], "the quick start shows no console output"
    for argv, shown in docs_run["sessions"]:
        result = docs_run["results"][tuple(argv)]
        assert result.returncode == 0, result.stderr[-2000:]
        printed = {_normalised(line) for line in result.stdout.splitlines()}
        stale = [line for line in shown if _normalised(line) not in printed]
        assert not stale, f"clusterdiv {shlex.join(argv)} no longer prints:\n" + "\n".join(stale)
    for (code, shown), result in zip(docs_run["snippets"], docs_run["ran"], strict=True):
        if shown is not None:
            assert result.stdout.split() == shown.split(), f"{code}\nprints\n{result.stdout}\nnot\n{shown}"


def test_demo_copies_its_files_and_suggests_commands_on_the_copies(tmp_path, subprocess_env):
    target = tmp_path / "demo-data"
    result = run_cli(["demo", "--copy-to", str(target), "--format", "json", "--no-progress"], subprocess_env,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    copied = sorted(p.name for p in target.iterdir())
    assert copied == ["real.jsonl", "synthetic_collapsed.jsonl"]
    suggested = " ".join(json.loads(result.stdout)["next"])
    assert str(target / "synthetic_collapsed.jsonl") in suggested and "site-packages" not in suggested


def test_mkdocs_build_strict_builds_every_page_api_name_and_command(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python", "griffe_pydantic"):
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the dev extra installs it)")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    import clusterdiv

    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in clusterdiv.__all__:
        if name == "__version__":
            continue
        # a lazy name is documented where the package imports it from, the others in the package itself
        module, attribute = clusterdiv._LAZY.get(name, ("clusterdiv", name))
        where = f"{module}.{attribute}"
        assert f'id="{where}"' in api, f"docs/api.md does not document clusterdiv.{name} ({where})"

    import typer.main

    from clusterdiv.cli import app

    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    for name in root.list_commands(root.context_class(root, info_name="clusterdiv")):
        assert f"clusterdiv {name}</code>" in cli, f"the CLI reference lacks `clusterdiv {name}`"
    getting_started = re.sub(r"<[^>]+>", "", (site / "getting-started" / "index.html").read_text(encoding="utf-8"))
    assert "include:" not in getting_started, "an include marker was left unexpanded"
    assert "clusterdiv demo --copy-to ." in getting_started and "Set up (two commands)" in getting_started
