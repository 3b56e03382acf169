"""Pure decision code: region scores and a threshold in, a verdict out; and what the reject does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .events import FailsafeReason, RegionResult, Verdict


@dataclass(frozen=True)
class Decision:
    """A classifier's verdict on a part, and when it was reached (monotonic seconds)."""

    verdict: Verdict
    regions: tuple[RegionResult, ...]
    decided_ts_s: float


@dataclass(frozen=True)
class Resolution:
    """What the part finally gets when it reaches the diverter."""

    verdict: Verdict
    failsafe_reason: FailsafeReason | None
    is_rejected: bool
    decision: Decision | None


def is_defect(defect_score: float, threshold: float) -> bool:
    """A region is defective when its score reaches the threshold."""
    return defect_score >= threshold


def decide(regions: Sequence[RegionResult], decided_ts_s: float) -> Decision:
    """A part is defective if any of its regions is."""
    verdict = Verdict.DEFECT if any(r.is_defect for r in regions) else Verdict.GOOD
    return Decision(verdict, tuple(regions), decided_ts_s)


def resolve(
    decision: Decision | None,
    failsafe_reason: FailsafeReason | None,
    deadline_ts_s: float,
    failsafe_rejects: bool = True,
) -> Resolution:
    """Final outcome of a part at its fire time.

    A known fail-safe reason wins; otherwise a decision reached after the deadline (or none at all)
    is a missed deadline. Fail-safe parts are rejected unless the line is configured to pass them.
    """
    if failsafe_reason is None and (decision is None or decision.decided_ts_s > deadline_ts_s):
        failsafe_reason = FailsafeReason.DEADLINE
    if failsafe_reason is not None:
        return Resolution(Verdict.FAILSAFE, failsafe_reason, failsafe_rejects, None)
    assert decision is not None
    return Resolution(decision.verdict, None, decision.verdict is Verdict.DEFECT, decision)


def extend_pulse(active_until_ts_s: float | None, fire_ts_s: float, pulse_width_s: float) -> float:
    """When the reject line should be released, given a new pulse starting at ``fire_ts_s``.

    Pulses of parts closer together than the pulse width merge into one longer assertion rather than
    releasing the line between two parts that both must go.
    """
    end = fire_ts_s + pulse_width_s
    return end if active_until_ts_s is None else max(active_until_ts_s, end)
