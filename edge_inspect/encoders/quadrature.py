"""Pure A/B quadrature decoding: levels in, signed quarter-steps out (x4 decoding).

Each valid Gray-code transition (00 -> 01 -> 11 -> 10 -> 00 is forward) is +1 or -1 quarter step;
a repeated state is 0, and a double transition (both channels changed between two samples: an edge
was missed) is counted in ``missed`` and moves nothing, since its direction is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

_FORWARD = {(0, 1): 1, (1, 3): 1, (3, 2): 1, (2, 0): 1}
_BACKWARD = {(b, a): -1 for (a, b) in _FORWARD}
_STEP = {**_FORWARD, **_BACKWARD}


def quarter_step(old_state: int, new_state: int) -> int | None:
    """+1, -1 or 0 for a transition between 2-bit states (A<<1 | B); None if both bits changed."""
    if old_state == new_state:
        return 0
    return _STEP.get((old_state, new_state))


@dataclass
class QuadratureDecoder:
    """Counts full A cycles (pulses) from A/B level changes, in either direction."""

    state: int = 0
    quarters: int = 0
    missed: int = 0

    @staticmethod
    def state_of(a: int | bool, b: int | bool) -> int:
        return (int(bool(a)) << 1) | int(bool(b))

    def reset(self, a: int | bool, b: int | bool) -> None:
        self.state = self.state_of(a, b)

    def update(self, a: int | bool, b: int | bool) -> int:
        """Feed the current levels; returns the position in full pulses (quarters // 4)."""
        new_state = self.state_of(a, b)
        step = quarter_step(self.state, new_state)
        if step is None:
            self.missed += 1
        else:
            self.quarters += step
        self.state = new_state
        return self.pulses

    @property
    def pulses(self) -> int:
        return self.quarters // 4
