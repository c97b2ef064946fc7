"""How long to wait before the next try after failures: one exponential backoff for every retry loop."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]

# 2**64 seconds is already far beyond any cap; stops float overflow for absurd attempt counts.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays of `initial` seconds, times `factor` per further failed attempt, at most `maximum` seconds."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 10.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 <= initial <= maximum and factor >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (1-based) after a failure; 0 and below count as 1."""
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        return float(min(self.maximum, self.initial * self.factor ** exponent))
