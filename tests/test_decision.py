"""Pure decision and tracking code, table-driven, time passed in."""

from __future__ import annotations

import numpy as np
import pytest

from edge_inspect.decision import Decision, decide, extend_pulse, is_defect, resolve
from edge_inspect.events import FailsafeReason, RegionResult, Verdict
from edge_inspect.sources.base import Frame
from edge_inspect.tracking import PartTracker, TriggerMatcher


def region(score: float, threshold: float = 0.5) -> RegionResult:
    return RegionResult("r", 0, 0, 1, 1, score, is_defect(score, threshold))


@pytest.mark.parametrize(
    ("scores", "verdict"),
    [([0.1], Verdict.GOOD), ([0.5], Verdict.DEFECT), ([0.1, 0.2], Verdict.GOOD), ([0.1, 0.9], Verdict.DEFECT)],
)
def test_any_defective_region_makes_a_defective_part(scores: list[float], verdict: Verdict) -> None:
    assert decide([region(s) for s in scores], 1.0).verdict is verdict


GOOD = Decision(Verdict.GOOD, (), decided_ts_s=1.0)
DEFECT = Decision(Verdict.DEFECT, (), decided_ts_s=1.0)
LATE_GOOD = Decision(Verdict.GOOD, (), decided_ts_s=3.0)


@pytest.mark.parametrize(
    ("decision", "reason", "rejects", "verdict", "out_reason", "rejected"),
    [
        (GOOD, None, True, Verdict.GOOD, None, False),
        (DEFECT, None, True, Verdict.DEFECT, None, True),
        (LATE_GOOD, None, True, Verdict.FAILSAFE, FailsafeReason.DEADLINE, True),
        (None, None, True, Verdict.FAILSAFE, FailsafeReason.DEADLINE, True),
        (GOOD, FailsafeReason.CLASSIFIER_ERROR, True, Verdict.FAILSAFE, FailsafeReason.CLASSIFIER_ERROR, True),
        (None, FailsafeReason.MISSED_TRIGGER, True, Verdict.FAILSAFE, FailsafeReason.MISSED_TRIGGER, True),
        (None, None, False, Verdict.FAILSAFE, FailsafeReason.DEADLINE, False),  # 'pass' policy: still counted
    ],
)
def test_resolve(decision, reason, rejects, verdict, out_reason, rejected) -> None:  # type: ignore[no-untyped-def]
    outcome = resolve(decision, reason, deadline_ts_s=2.0, failsafe_rejects=rejects)
    assert (outcome.verdict, outcome.failsafe_reason, outcome.is_rejected) == (verdict, out_reason, rejected)


@pytest.mark.parametrize(
    ("until", "fire", "width", "expected"),
    [(None, 1.0, 0.01, 1.01), (1.005, 1.0, 0.01, 1.01), (1.02, 1.0, 0.01, 1.02)],
)
def test_extend_pulse_merges_overlapping_pulses(until, fire, width, expected) -> None:  # type: ignore[no-untyped-def]
    assert extend_pulse(until, fire, width) == pytest.approx(expected)


def test_tracker_releases_parts_in_fire_order_at_their_time() -> None:
    tracker = PartTracker(travel_delay_s=0.5, latency_budget_s=0.4)
    tracker.add(1, 10.0, 0.0, None)
    tracker.add(2, 10.1, 0.0, None)
    part = tracker.add(3, 10.05, 0.0, None)  # a software trigger can arrive slightly out of order
    assert (part.fire_ts_s, part.deadline_ts_s) == (pytest.approx(10.55), pytest.approx(10.45))
    assert [p.part_id for p in tracker.pop_due(10.52)] == [1]
    assert [p.part_id for p in tracker.pop_due(10.6)] == [3, 2]
    assert len(tracker) == 0
    assert tracker.post_decision(1, GOOD) is False  # the part already left: too late


def test_the_next_moment_that_may_fire_skips_parts_already_settled_as_a_pass() -> None:
    """The scheduler spins only for a fire time that may move the reject line; a GOOD verdict in time never does."""
    tracker = PartTracker(travel_delay_s=1.0, latency_budget_s=2.5)  # deadlines 12.5, 12.6, 12.7
    for part_id, capture_ts in ((1, 10.0), (2, 10.1), (3, 10.2)):
        tracker.add(part_id, capture_ts, 0.0, None)
    assert tracker.next_may_fire_ts() == pytest.approx(11.0)  # no verdict yet: it may be a fail-safe reject
    tracker.post_decision(1, GOOD)
    assert tracker.next_fire_ts() == pytest.approx(11.0)  # still resolved at its time
    assert tracker.next_may_fire_ts() == pytest.approx(11.1)
    tracker.post_decision(2, DEFECT)
    assert tracker.next_may_fire_ts() == pytest.approx(11.1)  # a defect fires
    tracker.post_decision(3, LATE_GOOD.__class__(Verdict.GOOD, (), decided_ts_s=13.0))  # after its deadline
    assert [p.part_id for p in tracker.pop_due(11.15)] == [1, 2]
    assert tracker.next_may_fire_ts() == pytest.approx(11.2)  # a late verdict is a deadline fail-safe
    tracker.add(4, 10.3, 0.0, None)
    tracker.post_decision(4, GOOD)
    tracker.post_decision(3, GOOD)
    assert tracker.next_may_fire_ts() is None  # every part left is a settled pass
    tracker.fail(4, FailsafeReason.CLASSIFIER_ERROR)  # a fail-safe reason after the verdict wins
    assert tracker.next_may_fire_ts() == pytest.approx(11.3)
    tracker.post_decision(3, DEFECT)  # a second verdict that fires
    assert tracker.next_may_fire_ts() == pytest.approx(11.2)
    assert [p.part_id for p in tracker.pop_due(12.0)] == [3, 4]
    assert tracker.next_may_fire_ts() is None


def frame(seq: int, ts: float) -> Frame:
    return Frame(seq, ts, np.zeros((1, 1, 3), np.uint8))


def test_matcher_picks_the_nearest_frame() -> None:
    matcher = TriggerMatcher(max_offset_s=0.04)
    assert matcher.add_frame(frame(0, 1.000)) == []
    matcher.add_trigger(1.012)
    (match,) = matcher.add_frame(frame(1, 1.033))  # 21 ms after vs 12 ms before: the earlier one wins
    assert match.frame is not None and match.frame.sequence == 0
    matcher.add_trigger(1.030)  # arrives late (callback latency): frame 1 is nearest and still unused
    (match,) = matcher.expire(1.080)
    assert match.frame is not None and match.frame.sequence == 1


def test_matcher_reports_a_trigger_no_frame_can_serve() -> None:
    matcher = TriggerMatcher(max_offset_s=0.04)
    matcher.add_frame(frame(0, 1.0))
    matcher.add_trigger(1.2)
    assert matcher.expire(1.21) == []  # still waiting for a frame
    (match,) = matcher.expire(1.25)
    assert match.frame is None


def test_one_frame_serves_one_trigger() -> None:
    matcher = TriggerMatcher(max_offset_s=0.04)
    matcher.add_trigger(1.000)
    matcher.add_trigger(1.001)  # two parts in one frame period: the second cannot be served
    matches = matcher.add_frame(frame(0, 1.002))
    assert [m.frame is not None for m in matches] == [True, False]
