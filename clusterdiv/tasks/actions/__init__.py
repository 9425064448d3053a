"""Act on the measurement (issue 17): per-example modes, a diverse subset under a budget, tail seeds.

* `assign_modes` : one row per input example (mode, criteria, status, flag vs a reference), a DataFrame;
* `select_subset`: a subset of N examples that covers the modes, caps each mode's share, matches the
  reference's mode shares when given and prefers real examples up to a mix budget;
* `tail_seeds`   : real seed examples of every mode the batch lacks or under-covers, lineage-checked.

Each builds its modes with the same stages as `score` (clustering the raw text by default, so no LLM
call), so a mode id here is a mode id in the report of the same run.
"""

from __future__ import annotations

from clusterdiv.tasks.actions.assignments import assign_modes, write_assignments
from clusterdiv.tasks.actions.seeds import SeedsResult, tail_seeds
from clusterdiv.tasks.actions.select import SelectResult, select_subset
from clusterdiv.tasks.actions.write import write_examples

__all__ = [
    "SeedsResult",
    "SelectResult",
    "assign_modes",
    "select_subset",
    "tail_seeds",
    "write_assignments",
    "write_examples",
]
