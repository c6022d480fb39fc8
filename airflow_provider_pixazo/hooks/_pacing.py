"""
The status poller's one rate per loop and connection, learned from the gateway.

With no ``max_polls_per_second`` on the connection there is **no ceiling**: the rate follows what
the waits ask for and what the gateway accepts. It starts at :data:`START_RATE` and, while due polls
are held back by it and no 429 has been seen, doubles every :data:`SLOW_START_DOUBLING` seconds (slow
start: a thousand waits registered at once reach an unknown gateway as a ramp, not a burst). A rate
that holds no poll back does not grow, so a quiet loop never builds up a rate it has not tried; nor
does one above :data:`DELIVERY_GAIN` times the answers coming back, so a slow answer (a loaded
gateway, a starved loop, 429s still on their way) holds the ramp instead of feeding it.

A 429 pauses the whole loop once for its ``Retry-After`` (not once per wait) and cuts the rate to
:data:`SHARE` of what the gateway allows: the first one, of the rate the refused poll was sent at
(the ramp went past the limit there; its average would be far below it); the later ones, of the
least of that and what the gateway accepted since the previous pause or since the rate last held
nothing back (of half the rate if that was under :data:`EPISODE_MIN` seconds).
From then on the rate grows by only :data:`PROBE` a second (at least 1 call/s) while polls are held
back: it probes slowly for a raised limit, and the key's other calls (submits from workers, another
triggerer) keep about a tenth of the gateway's allowance between two cuts. Those calls also lower
what the gateway accepts from this loop, so each cut leaves them their part.

An explicit ``max_polls_per_second`` is a hard cap on all of this, below :data:`MIN_RATE` too.
Only arithmetic on the clock's times: no I/O, no timers, no logging (:mod:`._poller` sends,
schedules and logs).
"""

from __future__ import annotations

from collections import deque

__all__ = ["Pacing"]

#: The first rate (calls/s): what the connection allowed by default before the rate had no ceiling.
START_RATE = 20.0
#: Seconds per doubling of the rate while polls are held back and no 429 has been seen.
SLOW_START_DOUBLING = 0.5
#: The rate grows only while below this many times the answers that came back over the last
#: DELIVERY_WINDOW to 2 x DELIVERY_WINDOW seconds: growth is clocked by answers, not by the clock alone,
#: so a slow gateway (or a starved loop) cannot be sent ever more calls before its 429s arrive.
DELIVERY_GAIN = 1.5
DELIVERY_WINDOW = 0.5
#: The rate never drops below this (one poll every 5 s); a 429 pause still stops everything.
MIN_RATE = 0.2
#: Share of the accepted rate kept after a 429: the rest of the gateway's allowance is left to the
#: key's other calls (submits, another triggerer) until the slow probe reaches the limit again.
SHARE = 0.9
#: Relative growth of the rate per second after the first 429 (additive at low rates: >= 1/s).
PROBE = 0.01
#: Shortest time between two 429 episodes that tells the gateway's rate (else: halve).
EPISODE_MIN = 0.5
#: Retry-After assumed for a 429 without one, and the longest one honoured.
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 120.0
#: Polls a late timer may catch up at once, in seconds of schedule (at least one slot).
PACING_SLACK = 0.005

#: Seconds of rate changes kept to tell the rate a refused poll was sent at (for a later answer: the
#: oldest kept), at most one a RATE_MARK_STEP (the rate grows at every send).
RATE_HISTORY = 10.0
RATE_MARK_STEP = 0.01

_NEVER = float("-inf")


class Pacing:
    """
    When the next status poll may go out: the learned rate, its slots, and the loop-wide 429 pause.

    Starts at rate 0 (nothing goes out) until :meth:`set_ceiling` gives it the connection's cap.
    """

    __slots__ = (
        "_bound",
        "_calm_at",
        "_decreased_at",
        "_episode_ok",
        "_last_growth",
        "_next_slot",
        "_prev_answers",
        "_rate_marks",
        "_resumed_at",
        "_win_answers",
        "_win_start",
        "cap",
        "learned",
        "paused_until",
        "rate",
    )

    def __init__(self) -> None:
        #: Status calls per second currently allowed.
        self.rate = 0.0
        #: The connection's ``max_polls_per_second``; None: no cap.
        self.cap: float | None = None
        #: The gateway's rate as the last 429 told it (None before any 429: still in slow start).
        self.learned: float | None = None
        self._next_slot = _NEVER
        #: No poll is sent before this time (the last 429's Retry-After, for the whole loop).
        self.paused_until = _NEVER
        self._decreased_at = _NEVER
        self._resumed_at = _NEVER
        self._last_growth = _NEVER
        self._episode_ok = 0
        self._bound = False  # a due poll waited for its slot since the last growth
        self._calm_at = _NEVER  # the last send before which no due poll waited for its slot
        # Answers that came back in the current and the previous delivery window.
        self._win_start = _NEVER
        self._win_answers = 0
        self._prev_answers = 0
        # (time, rate) when the rate last changed, for the last RATE_HISTORY seconds: the rate a
        # refused poll was sent at, once its 429 arrives (a slow answer arrives after more growth).
        self._rate_marks: deque[tuple[float, float]] = deque()

    def set_ceiling(self, cap: float | None) -> None:
        """Apply the connection's ``max_polls_per_second`` (None: no cap); the first call starts the rate."""
        self.cap = cap
        if self.rate == 0.0:
            self.rate = START_RATE
        if cap is not None:
            self.rate = min(self.rate, cap)

    def earliest(self, due: float) -> float:
        """The soonest a poll due at ``due`` may go out: after its slot and after any pause."""
        return max(due, self._next_slot, self.paused_until)

    def take_slot(self, now: float) -> bool:
        """Claim the next send slot for a due poll if it has come (True), spacing sends ``1 / rate`` apart."""
        # A timer that fired a little late may catch up a slot or so; after a quiet spell the
        # schedule starts afresh at now (no burst of the slots nobody used).
        slot = self._next_slot
        if slot < now - max(PACING_SLACK, 1.0 / self.rate):
            slot = now
        elif slot > now:
            self._bound = True  # the waits ask for more than the rate: it may grow
            return False
        self._next_slot = slot + 1.0 / self.rate
        return True

    def grow(self, now: float) -> None:
        """Raise the rate for the time since the last growth (at most a second's worth) if it held polls back."""
        if now <= self._last_growth:
            return
        if not self._bound:
            # The waits asked for less than the rate: what the gateway accepts from here on tells
            # its limit (an idle spell before would make it look smaller than it is).
            self._calm_at = now
            self._episode_ok = 0
        elif self._last_growth > _NEVER and self.rate < max(START_RATE, DELIVERY_GAIN * self._delivered(now)):
            elapsed = min(now - self._last_growth, 1.0)
            if self.learned is None:
                rate = self.rate * 2.0 ** (elapsed / SLOW_START_DOUBLING)
            else:
                rate = self.rate + max(1.0, self.rate * PROBE) * elapsed
            self._set_rate(now, rate)
        self._bound = False
        self._last_growth = now

    def _set_rate(self, now: float, rate: float) -> None:
        """Set the rate, within the connection's hard cap, and note when it changed."""
        self.rate = rate if self.cap is None else min(self.cap, rate)
        marks = self._rate_marks
        if marks and now - marks[-1][0] < RATE_MARK_STEP:
            marks[-1] = (marks[-1][0], self.rate)  # growth at every send: one mark per step is enough
        else:
            marks.append((now, self.rate))
        while len(marks) > 1 and marks[1][0] <= now - RATE_HISTORY:
            marks.popleft()

    def _rate_at(self, when: float) -> float:
        """The rate in force at ``when`` (the oldest one kept if earlier, the current one if none is kept)."""
        rate = self._rate_marks[0][1] if self._rate_marks else self.rate
        for at, marked in self._rate_marks:
            if at > when:
                break
            rate = marked
        return rate if self.cap is None else min(rate, self.cap)  # a cap lowered since: it held

    def accepted(self, now: float) -> None:
        """The gateway took a call: it counts toward the rate it allows, and clocks the rate's growth."""
        self._episode_ok += 1
        if now >= self._win_start + DELIVERY_WINDOW:
            recent = now < self._win_start + 2 * DELIVERY_WINDOW
            self._prev_answers = self._win_answers if recent else 0
            self._win_start = now
            self._win_answers = 0
        self._win_answers += 1

    def _delivered(self, now: float) -> float:
        """Answers a second over the last one or two delivery windows (0 before any)."""
        if now >= self._win_start + 2 * DELIVERY_WINDOW:
            return 0.0
        return (self._prev_answers + self._win_answers) / (DELIVERY_WINDOW + max(now - self._win_start, 0.0))

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
            # The first 429 of an episode (polls sent before the last cut do not cut again).
            sent_rate = self._rate_at(sent_at)
            span = now - max(self._resumed_at, self._calm_at)
            if not EPISODE_MIN <= span < float("inf"):
                allowed = sent_rate / 2  # over too short a time nothing is known: halve
            elif self.learned is None:
                # Slow start: the gateway took every call of the ramp until the rate it was sent at
                # went past what it allows (its burst, if any, saved: an estimate from above, which
                # the next episodes bring down). The average over the ramp would be far below it
                # with a small burst, and the slow probe would take minutes to climb back.
                allowed = sent_rate
            else:
                # Since the end of the previous pause (or since the rate last held nothing back, if
                # later) the gateway's allowance went from what it saved to nothing, so the calls it
                # took over that time is the rate it allows, plus what it saved (for a token bucket
                # with this loop as its only client; less when others share the key).
                allowed = self._episode_ok / span
            self.learned = min(sent_rate, allowed)
            self._set_rate(now, max(MIN_RATE, self.learned * SHARE))
            self._decreased_at = now
            self._episode_ok = 0
            self._last_growth = self.paused_until
            self._bound = False
            cut = retry_after
        self._resumed_at = self.paused_until
        return cut
