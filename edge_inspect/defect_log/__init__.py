"""The QA defect log: every defect and fail-safe part plus a sample of good parts, on disk, for review.

- :mod:`.writer`: the writer that records parts (images first, SQLite row second), as a thread or
  in :mod:`.process`, its own process;
- :mod:`.retention`: disk budget, maximum age, free-space floor;
- :mod:`.reconcile`: start-up check after a crash;
- :mod:`.store`: queries, review actions and statistics for the review pages and the export;
- :mod:`.service`: the ``edge-inspect run`` service that wires a writer to an inspector.
"""

from .reconcile import ReconcileReport, reconcile
from .schema import LABELS, DefectRecord, LoggedRegion
from .writer import DefectLogStatus, DefectLogWriter, is_sampled, should_log

__all__ = [
    "LABELS",
    "DefectLogStatus",
    "DefectLogWriter",
    "DefectRecord",
    "LoggedRegion",
    "ReconcileReport",
    "is_sampled",
    "reconcile",
    "should_log",
]
