"""The command line: a thin typer skin over the library.

`root.py` holds the typer app with `score`, `metrics` and `cache`; `commands/` holds every other
command, one module per feature, discovered and registered by `root.py`; `common.py` is what they
all share (options, output formats, the one error wrapper). The console script is `main`.
"""

from clusterdiv.cli.root import app, main

__all__ = ["app", "main"]
