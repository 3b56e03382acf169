"""The reject scheduler: owns the output lines, fires each part's reject on time, applies the fail-safe.

See docs/ARCHITECTURE.md ("The reject scheduler"): ``schedule`` (what a part gets), ``channel`` (the
pipe framing), ``loop`` (wait, spin, fire), ``process`` (the clean child interpreter), ``realtime``
(SCHED_FIFO, mlockall), ``client`` (what the Inspector uses).
"""

from .channel import ChannelError
from .client import MODES, SchedulerClient
from .schedule import SchedulerSpec

__all__ = ["MODES", "ChannelError", "SchedulerClient", "SchedulerSpec"]
