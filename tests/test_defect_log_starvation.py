"""The defect-log writer process at SCHED_IDLE yields to inspection, but not to other programs for good:
the starvation guard (edge_inspect/defect_log/starvation.py) and the writer process it raises."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from plant_helpers import wait_for
from test_defect_log_helpers import QueueSource, log_config, make_result, noisy_image

from edge_inspect.defect_log.process import DefectLogProcess
from edge_inspect.defect_log.starvation import BACKLOG_STUCK_S, Reading, StarvationGuard
from edge_inspect.procstat import busy_ticks, family_cpu_s


def _readings(guard: StarvationGuard, seconds: int, box_cores: float, appliance_cores: float,
              drops_per_s: int = 0, backlog_age_s: float = 0.0) -> list[bool]:
    decisions = []
    for t in range(seconds + 1):
        reading = Reading(100.0 + t, 5000.0 + box_cores * t, 300.0 + appliance_cores * t, drops_per_s * t,
                          backlog_age_s)
        decisions.append(guard.observe(reading).raise_writer)
    return decisions


def test_a_log_behind_while_other_programs_keep_the_box_busy_raises_the_writer_after_a_window() -> None:
    decisions = _readings(StarvationGuard(window_s=3.0), 5, box_cores=2.0, appliance_cores=0.6, drops_per_s=40)
    assert decisions == [False, False, False, True, True, True]  # from the first full window on


def test_a_log_behind_because_inspection_takes_the_cpu_is_left_at_idle_priority() -> None:
    """At overload the appliance itself keeps both cores busy and the log drops parts: that is what
    SCHED_IDLE is for, so the guard must not act (the bench's saturation phase)."""
    guard = StarvationGuard(window_s=3.0)
    assert not any(_readings(guard, 10, box_cores=2.0, appliance_cores=1.8, drops_per_s=500))
    assert "as meant" in guard.observe(Reading(111.0, 5022.0, 319.8, 5500, 0.0)).why


def test_other_programs_busy_but_the_log_keeping_up_leaves_it_alone() -> None:
    assert not any(_readings(StarvationGuard(window_s=3.0), 10, box_cores=2.0, appliance_cores=0.1))


def test_parts_waiting_to_be_recorded_count_as_behind_before_the_queue_drops() -> None:
    """A slow line fills the log's queue only after minutes; a writer that records nothing shows at once."""
    stuck = _readings(StarvationGuard(window_s=3.0), 3, box_cores=2.0, appliance_cores=0.2,
                      backlog_age_s=BACKLOG_STUCK_S)
    assert stuck[-1]
    brief = _readings(StarvationGuard(window_s=3.0), 3, box_cores=2.0, appliance_cores=0.2, backlog_age_s=0.01)
    assert not any(brief)


def test_a_virtual_machines_stolen_time_is_not_another_programs_work() -> None:
    """On a busy host the hypervisor takes time from this VM's cores (/proc/stat's steal). No program here
    ran then, so an overloaded appliance on such a VM must stay at idle priority (the bench's saturation
    phase raised its writer on this project's VM: 0.45 cores of steal read as 0.6 cores of other programs)."""
    # user nice system idle iowait irq softirq steal guest guest_nice, ticks
    start = "cpu  100000 2000 30000 500000 900 0 700 9000 0 0"
    assert busy_ticks(start) == 100000 + 2000 + 30000 + 0 + 700
    guard = StarvationGuard(window_s=3.0)
    for t in range(5):  # the appliance fills 1.4 cores, 0.3 of it system time; the host steals 0.6 cores
        fields = [100000 + 110 * t, 2000, 30000 + 30 * t, 500000, 900, 0, 700, 9000 + 60 * t, 0, 0]
        line = "cpu  " + " ".join(str(f) for f in fields)
        box_s = busy_ticks(line) / 100  # 100 ticks per second, two cores: 200 ticks/s, none idle
        decision = guard.observe(Reading(100.0 + t, box_s, 300.0 + 1.4 * t, 500 * t, 0.0))
        assert not decision.raise_writer, decision.why
    assert decision.others_cores == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="cpu line"):
        busy_ticks("intr 1 2 3")


def _may_raise_from_idle() -> bool:
    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 10


@pytest.fixture
def two_cpu_hogs(tmp_path: Path) -> Iterator[None]:
    """Two busy loops that are not this process's children (as another program on the box would be)."""
    pids_file = tmp_path / "hogs.pids"
    # each ends by itself after 5 minutes, should this test's process be killed before its clean-up
    hog = f"{sys.executable} -c 'import time; end = time.monotonic() + 300\nwhile time.monotonic() < end: pass'"
    subprocess.run(["sh", "-c", f"({hog} & echo $! >> {pids_file}; {hog} & echo $! >> {pids_file}) &"], check=True)
    wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2, what="the hogs started")
    pids = [int(pid) for pid in pids_file.read_text().split()]
    try:
        yield
    finally:
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
@pytest.mark.skipif(not _may_raise_from_idle(), reason="needs root, CAP_SYS_NICE or RLIMIT_NICE >= 10")
def test_a_writer_starved_by_other_programs_is_raised_to_nice_10_and_records_every_part(
    tmp_path: Path, two_cpu_hogs: None
) -> None:
    data_dir = tmp_path / "log"
    source = QueueSource()
    writer = DefectLogProcess(log_config(data_dir), source)
    writer.start()
    try:
        pid = writer.pid
        assert pid is not None
        wait_for(lambda: os.sched_getscheduler(pid) == os.SCHED_IDLE, what="the writer at idle priority")
        fed = 0

        def feed_and_check() -> bool:
            """A line keeps sending parts (one per poll, 320 x 240 frames) until the guard acts: a fixed handful
            could be written in the odd slice of idle CPU before the hogs get going, and then nothing is behind."""
            nonlocal fed
            if writer.raised_reason is None:
                source.put(make_result(fed, image=noisy_image(fed, 320, 240)))
                fed += 1
            return writer.raised_reason is not None

        wait_for(feed_and_check, timeout_s=60.0, what="the guard raised the writer")
        assert "other programs" in (writer.raised_reason or "")
        assert os.sched_getscheduler(pid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, pid) == 10
        wait_for(lambda: writer.status().logged == fed, timeout_s=120.0, what="every part recorded")
    finally:
        writer.close()


def test_the_appliances_cpu_keeps_what_an_ended_child_used() -> None:
    before = family_cpu_s(os.getpid())
    child = subprocess.run(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"],
        check=True,
    )
    assert child.returncode == 0
    after = family_cpu_s(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.25  # the child's 0.3 s: an ended child's CPU is still the appliance's

