"""
The status poller's one rate per loop and connection, learned from the gateway (AIMD).

Polls are sent evenly spaced at the current rate, never above the connection's
``max_polls_per_second``. A 429 pauses the whole loop once for its ``Retry-After`` (not once per
wait) and cuts the rate to 90 % of what the gateway accepted since the previous 429 (a halving the
first time); the rate then grows back by 2 % a second (at least 1 call/s) while polls go through, up
to ``max_polls_per_second``. Only arithmetic on the clock's times: no I/O, no timers, no logging
(:mod:`._poller` sends, schedules and logs).
"""

from __future__ import annotations

__all__ = ["Pacing"]

#: The rate never drops below this (one poll every 5 s); a 429 pause still stops everything.
MIN_RATE = 0.2
#: Share of the accepted rate kept after a 429 (multiplicative decrease toward what the gateway took).
DECREASE = 0.9
#: Relative growth of the rate per second while polls go through (additive at low rates: >= 1/s).
INCREASE = 0.02
#: Shortest time between two 429 episodes that tells the gateway's rate (else: halve).
EPISODE_MIN = 0.5
#: Retry-After assumed for a 429 without one, and the longest one honoured.
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 120.0
#: Polls a late timer may catch up at once, in seconds of schedule (at least one slot).
PACING_SLACK = 0.005

_NEVER = float("-inf")


class Pacing:
    """
    When the next status poll may go out: the learned rate, its slots, and the loop-wide 429 pause.

    Starts at rate 0 (nothing goes out) until :meth:`set_ceiling` gives it the connection's limit.
    """

    __slots__ = (
        "_decreased_at",
        "_episode_ok",
        "_last_growth",
        "_max_rate",
        "_next_slot",
        "_resumed_at",
        "paused_until",
        "rate",
    )

    def __init__(self) -> None:
        #: Status calls per second currently allowed (learned; at most ``max_polls_per_second``).
        self.rate = 0.0
        self._max_rate = 0.0
        self._next_slot = _NEVER
        #: No poll is sent before this time (the last 429's Retry-After, for the whole loop).
        self.paused_until = _NEVER
        self._decreased_at = _NEVER
        self._resumed_at = _NEVER
        self._last_growth = _NEVER
        self._episode_ok = 0

    def set_ceiling(self, max_rate: float) -> None:
        """Apply the connection's ``max_polls_per_second`` (the first one is also the starting rate)."""
        self._max_rate = max_rate
        self.rate = max_rate if self.rate == 0.0 else min(self.rate, max_rate)

    def earliest(self, due: float) -> float:
        """The soonest a poll due at ``due`` may go out: after its slot and after any pause."""
        return max(due, self._next_slot, self.paused_until)

    def take_slot(self, now: float) -> bool:
        """Claim the next send slot if it has come (True), spacing sends ``1 / rate`` apart."""
        # A timer that fired a little late may catch up a slot or so; after a quiet spell the
        # schedule starts afresh at now (no burst of the slots nobody used).
        slot = self._next_slot
        if slot < now - max(PACING_SLACK, 1.0 / self.rate):
            slot = now
        elif slot > now:
            return False
        self._next_slot = slot + 1.0 / self.rate
        return True

    def grow(self, now: float) -> None:
        """Raise the rate for the time since the last growth (at most a second's worth at once)."""
        if now <= self._last_growth:
            return
        if self._last_growth > _NEVER:
            elapsed = min(now - self._last_growth, 1.0)
            self.rate = min(self._max_rate, self.rate + max(1.0, self.rate * INCREASE) * elapsed)
        self._last_growth = now

    def accepted(self) -> None:
        """The gateway took a call: it counts toward the rate it allows."""
        self._episode_ok += 1

    def rate_limited(self, now: float, asked: float | None, sent_at: float) -> float | None:
        """
        Pause for a 429 and, on the first 429 of an episode, cut the rate.

        :param asked: the 429's ``Retry-After`` in seconds, if it said.
        :param sent_at: when the refused poll went out.
        :return: the pause, in seconds, if this 429 cut the rate; None if it only extended the pause.
        """
        retry_after = min(MAX_RETRY_AFTER, DEFAULT_RETRY_AFTER if asked is None else asked)
        # Once for the whole loop: the pause covers every wait, later 429s only extend it.
        self.paused_until = max(self.paused_until, now + retry_after)
        cut: float | None = None
        if sent_at > self._decreased_at:
            # The first 429 of an episode (polls sent before the last cut do not cut again). Since
            # the end of the previous pause the gateway's allowance went from what it saved during
            # the pause to nothing, so the calls it took over that time is the rate it allows, plus
            # the little it saved (for a token bucket with this loop as its only client; less when
            # others share the key). The first time nothing is known yet: halve.
            span = now - self._resumed_at
            allowed = self._episode_ok / span if EPISODE_MIN <= span < float("inf") else self.rate / 2
            self.rate = max(MIN_RATE, min(self.rate, allowed) * DECREASE)
            self._decreased_at = now
            self._episode_ok = 0
            self._last_growth = self.paused_until
            cut = retry_after
        self._resumed_at = self.paused_until
        return cut
