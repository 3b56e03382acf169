"""The stall watchdog and loop heartbeats: an inference past the latency budget is a FAULT at once.
"""

from __future__ import annotations

from .state import InspectorState


class WatchdogMixin(InspectorState):
    def loop_heartbeats(self) -> dict[str, float]:
        """When each inspection thread last went round its loop (``clock`` time); empty before start.

        Every loop comes round at least every 0.2 s when healthy; a value that stops advancing means
        that thread is stuck (a hung camera read or inference), which the systemd watchdog acts on.
        """
        return dict(self._loop_beats)

    def _watch_inference(self, now: float) -> None:
        """An inference running past the latency budget is a stall: FAULT now, not at the next part."""
        started = self._inference_started_ts_s
        if started is not None and now - started > self.config.line.latency_budget_s:
            self._raise_fault("inference-stall", f"inference stalled for {(now - started) * 1000.0:.1f} ms")
        if started is not None and now - started > self.INFERENCE_PROCESS_HUNG_S:
            self._end_hung_worker(now - started)  # a thread cannot be killed; a process can, and is restarted
