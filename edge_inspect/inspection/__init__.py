"""The Inspector's concerns, one module each; :mod:`edge_inspect.pipeline` puts them together.

- ``capture``: camera reads and reconnects, trigger matching, parts to the scheduler and the queue;
- ``inference``: prepare and inference threads, verdicts, classifier errors;
- ``actuation``: the inspection side of the reject scheduler (:mod:`edge_inspect.actuation`);
- ``results``: one PartResult per resolved part, counted and fanned out to subscribers;
- ``faults``: the FAULT/alarm state machine and its listeners;
- ``watchdog``: the inference-stall watchdog and the loop heartbeats;
- ``live_view``: the newest frame and classified frame for the operator's screen;
- ``state``: the attributes they share. The READY heartbeat is the scheduler's (``actuation/loop.py``).
"""
