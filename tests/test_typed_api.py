"""The public API is typed for its users (issue 33 item 4): the `py.typed` marker makes mypy read the
package's annotations, a typed use of every configuring name passes, and a wrong use is caught (so the
check is not vacuous: without the marker or with `Any` everywhere both would pass)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
pytest.importorskip("mypy")


def mypy(path: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports",
                           "--no-error-summary", "--cache-dir", str(cache), str(path)],
                          capture_output=True, text=True, timeout=600, cwd=TESTS.parent)


def test_typed_use_of_the_public_api_passes_and_a_wrong_one_fails(tmp_path):
    ok = mypy(TESTS / "typecheck" / "public_api.py", tmp_path / "cache")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = tmp_path / "wrong.py"
    wrong.write_text("import clusterdiv\n\n\ndef f() -> str:\n    return clusterdiv.score(['a b']).n_input\n")
    bad = mypy(wrong, tmp_path / "cache")
    assert bad.returncode == 1 and 'Incompatible return value type (got "int", expected "str")' in bad.stdout, \
        bad.stdout + bad.stderr
