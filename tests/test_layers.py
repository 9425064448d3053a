"""The package layers of docs/ARCHITECTURE.md hold in the code: no import reaches a higher layer.

Imports inside functions count too, because a lazy import is still a dependency: a lower layer that
needs a higher one gets a callback instead (the plugin registry's metric sink).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clusterdiv"
LAYERS = {"core": 0, "io": 1, "llm": 2, "engine": 2, "reports": 3, "modes": 4, "metrics": 5, "tasks": 6,
          "history": 7, "service": 8, "cli": 9}


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every clusterdiv module `path` imports, and every name it takes from one (as module.name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "clusterdiv":
            if node.module == "clusterdiv":
                found += [(f"clusterdiv.{a.name}", node.lineno) for a in node.names]
            else:
                found.append((node.module, node.lineno))
                found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "clusterdiv"]
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts), p) for p in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_sits_in_a_declared_layer():
    top = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert top == set(LAYERS), sorted(top ^ set(LAYERS))
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert not loose, loose  # every module belongs to a layer's package


def test_no_import_reaches_a_higher_layer():
    upward = []
    for module, path in _modules():
        parts = module.split(".")
        if len(parts) < 3:  # clusterdiv/__init__.py: the public API names every layer, lazily
            continue
        for target, line in _imports(path):
            layer = target.split(".")[1] if "." in target else None
            if layer in LAYERS and LAYERS[layer] > LAYERS[parts[1]]:
                upward.append(f"{module}:{line} imports {target}")
    assert not upward, upward


def test_no_module_imports_another_packages_private_names():
    private = []
    for module, path in _modules():
        package = module.rsplit(".", 1)[0] if not path.name == "__init__.py" else module
        for target, line in _imports(path):
            parts = target.split(".")
            hidden = [i for i, part in enumerate(parts) if part.startswith("_") and not part.startswith("__")]
            if hidden and not package.startswith(".".join(parts[: hidden[0]])):
                private.append(f"{module}:{line} imports {target}")
    assert not private, private
