"""Reality anchoring: keep synthetic data tied to real data.

Four checks, each a function returning the same `Report` as `score` (with its own section):

* `audit_tail`  (`tail_audit`): are the rare cases still in the batch?
* `mix_budget`  (`mix`): how much of the mix is real, overall and per label or mode?
* `check_lineage` (`lineage`): is the batch seeded from earlier synthetic batches?
* `drift`       (`drift`): is the batch still a stand-in for fresh real data (shelf life)?

Note: the package attribute `clusterdiv.tasks.anchoring.drift` is the function; import the module's
other names with `from clusterdiv.tasks.anchoring.drift import ...`.
"""

from __future__ import annotations

from clusterdiv.tasks.anchoring.drift import drift
from clusterdiv.tasks.anchoring.lineage import check_lineage
from clusterdiv.tasks.anchoring.mix import mix_budget
from clusterdiv.tasks.anchoring.render import render_markdown, render_table
from clusterdiv.tasks.anchoring.tail import audit_tail
from clusterdiv.tasks.anchoring.tail_spec import TailEntry, TailSpec, load_tail_spec

__all__ = [
    "TailEntry",
    "TailSpec",
    "audit_tail",
    "check_lineage",
    "drift",
    "load_tail_spec",
    "mix_budget",
    "render_markdown",
    "render_table",
]
