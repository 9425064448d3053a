"""Ecosystem conventions (issue 33 item 4): `clusterdiv --version`, and the `py.typed` marker that tells type
checkers the package's annotations are meant to be read."""

from __future__ import annotations

from pathlib import Path

from test_cli import run_cli

import clusterdiv


def test_version_prints_the_package_version_and_exits_0(subprocess_env):
    r = run_cli(["--version"], subprocess_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"clusterdiv {clusterdiv.__version__}"


def test_the_package_ships_a_py_typed_marker():
    assert (Path(clusterdiv.__file__).parent / "py.typed").is_file()
