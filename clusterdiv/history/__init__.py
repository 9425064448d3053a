"""Run history: every scored batch recorded in SQL, per-dataset thresholds, trends and the CI gate.

SQLite by default (one file, nothing to run), any SQLAlchemy URL (e.g. PostgreSQL) for a team.
"""

from clusterdiv.history.models import HEADLINE_METRICS, RunRecord, Tracking, trackable_metrics
from clusterdiv.history.store import HistoryStore, default_history_url, resolve_history_url

__all__ = [
    "HEADLINE_METRICS",
    "HistoryStore",
    "RunRecord",
    "Tracking",
    "default_history_url",
    "resolve_history_url",
    "trackable_metrics",
]
