"""The defect log as a service of ``edge-inspect run`` (started by :mod:`edge_inspect.services`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from ..config.models import AppConfig
from .process import DefectLogProcess
from .writer import AlarmCallback, DefectLogWriter

log = logging.getLogger(__name__)

SUBSCRIBER_NAME = "defect_log"
"""The log's key in ``inspector.status().dropped``."""
ALARM_KEY = "defect-log"
WAKE_DELAY_S = 0.05
"""The writer looks for new parts this often (sooner when its queue is half full) instead of being woken
for each part: at hundreds of parts a second that is one hand-off from the loop per 50 ms, not per part."""


def inspector_alarm(inspector: Any) -> AlarmCallback:
    """Forward the log's alarm to the inspector's ``raise_alarm(key, reason)`` / ``clear_alarm(key)``.

    Those drive the ALARM output and show in the status without stopping inspection (a full QA disk
    must not stop the line). An inspector without them gets the alarm in the log only.
    """
    raise_alarm: Callable[[str, str], None] | None = getattr(inspector, "raise_alarm", None)
    clear_alarm: Callable[[str], None] | None = getattr(inspector, "clear_alarm", None)

    def on_alarm(reason: str | None) -> None:
        if reason is not None and raise_alarm is not None:
            raise_alarm(ALARM_KEY, reason)
        elif reason is None and clear_alarm is not None:
            clear_alarm(ALARM_KEY)

    return on_alarm


@contextlib.contextmanager
def defect_log_service(config: AppConfig, inspector: Any) -> Iterator[DefectLogWriter | DefectLogProcess]:
    """Record ``inspector``'s defects and sampled good parts while the context lasts.

    ``defect_log.mode`` "process" (the default) runs the writer in its own process, "thread" in this one
    (:mod:`.process`); both read the same bounded subscription and write the same files. Start-up reconciles what a
    previous run left (see :mod:`.reconcile`) before the first part; on exit the writer records what is
    still queued.
    """
    subscription = inspector.subscribe(SUBSCRIBER_NAME, config.defect_log.queue_items)
    subscription.wake_delay_s = WAKE_DELAY_S
    writer: DefectLogWriter | DefectLogProcess
    if config.defect_log.mode == "process":
        writer = DefectLogProcess(config.defect_log, subscription, on_alarm=inspector_alarm(inspector))
    else:
        writer = DefectLogWriter(config.defect_log, subscription, on_alarm=inspector_alarm(inspector))
    try:
        report = writer.open()
        if not report.is_clean:
            log.warning("%s", report.summary())
        writer.start()
        log.info("defect log in %s", config.defect_log.data_dir)
        yield writer
    finally:
        writer.close()
