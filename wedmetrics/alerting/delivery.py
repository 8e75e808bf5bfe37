"""Deliver notifications off the hot path: bounded queues, retries, dead letters.

:class:`DeliveryQueue` owns one worker thread per channel (notifier), so a
slow or stalled channel only ever delays itself.  ``submit()`` never blocks:
it appends to each channel's bounded queue and wakes its worker (no polling,
so a notification starts moving within microseconds), or, when the queue is
full, records the drop as a counted dead letter.

A failed attempt is retried with exponential back-off and jitter
(:class:`RetryPolicy`) unless the notifier called the failure permanent
(HTTP 4xx, refused credentials): those go straight to the dead letters.
Waiting retries do not hold the channel: the worker keeps delivering other
notifications and picks the retry up when it is due.  Back-off waits are
``Condition.wait`` calls, so :meth:`DeliveryQueue.close` interrupts them.

Nothing accepted is silently lost: every delivery ends as ``sent`` or as a
:class:`DeadLetter` (reason ``permanent``, ``retries_exhausted``,
``queue_full`` or ``closed``), kept in a bounded in-memory list and
optionally handed to a callback, on its own thread, for persistence.
"""
from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from wedmetrics.clock import Clock, WallClock

from .notification import Notification, NotificationGroup, as_group
from .notifiers import DeliveryError, Notifier

__all__ = [
    "RetryPolicy",
    "DeadLetter",
    "DeliveryQueue",
    "REASON_PERMANENT",
    "REASON_RETRIES_EXHAUSTED",
    "REASON_QUEUE_FULL",
    "REASON_CLOSED",
]

REASON_PERMANENT = "permanent"
REASON_RETRIES_EXHAUSTED = "retries_exhausted"
REASON_QUEUE_FULL = "queue_full"
REASON_CLOSED = "closed"

log = logging.getLogger("wedmetrics.alerting.delivery")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed delivery is retried.

    The wait before retry ``k`` (``k = 1`` after the first failure) is
    ``min(cap, base * 2**(k-1))``, shortened by a random fraction of at most
    ``jitter`` so that channels failing together do not retry in lock-step
    ("equal jitter" family; see the AWS Architecture Blog, "Exponential
    Backoff and Jitter", 2015).  A server's ``Retry-After`` is honoured up to
    ``cap``.

    Parameters
    ----------
    max_attempts : int
        Attempts in total, first one included (1 = never retry).
    base : float
        First back-off in seconds.
    cap : float
        Largest back-off in seconds.
    jitter : float
        In ``[0, 1]``; 0 gives exact, deterministic delays.

    >>> p = RetryPolicy(base=1.0, cap=5.0, jitter=0.0)
    >>> [p.delay(k, random.Random(0)) for k in (1, 2, 3, 4)]
    [1.0, 2.0, 4.0, 5.0]
    """

    max_attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        m = self.max_attempts
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be an int >= 1, got {m!r}")
        for field in ("base", "cap"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"RetryPolicy.{field} must be a finite number of seconds >= 0, got {v!r}")
        if self.cap < self.base:
            raise ValueError(f"RetryPolicy.cap ({self.cap!r}) must be >= base ({self.base!r})")
        j = self.jitter
        if isinstance(j, bool) or not isinstance(j, (int, float)) or not 0.0 <= j <= 1.0:
            raise ValueError(f"RetryPolicy.jitter must be in [0, 1], got {j!r}")

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"RetryPolicy.delay: attempt is 1-based, got {attempt!r}")
        # 2**k overflows floats near k = 1024; the cap is reached long before.
        d = min(self.cap, self.base * 2.0 ** min(attempt - 1, 64))
        d *= 1.0 - self.jitter * rng.random()
        if retry_after is not None and math.isfinite(retry_after):
            d = max(d, min(float(retry_after), self.cap))
        return d


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A delivery that was given up on.

    Attributes
    ----------
    message : NotificationGroup
        What was to be delivered.
    channel : str
        Channel (notifier) name.
    target : str or None
        Recipient within the channel (SMS number), None for whole-channel
        deliveries.
    attempts : int
        Delivery attempts made (0 for ``queue_full`` and some ``closed``).
    reason : str
        ``"permanent"``, ``"retries_exhausted"``, ``"queue_full"`` or ``"closed"``.
    error : str
        Last error message (never contains a secret), or why it was dropped.
    time : float
        Epoch seconds (queue's clock) it was dead-lettered.
    """

    message: NotificationGroup
    channel: str
    target: str | None
    attempts: int
    reason: str
    error: str
    time: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for persistence."""
        return {
            "channel": self.channel,
            "target": self.target,
            "attempts": self.attempts,
            "reason": self.reason,
            "error": self.error,
            "time": self.time,
            "message": self.message.to_dict(),
        }


@dataclasses.dataclass
class _Job:
    message: NotificationGroup
    target: str | None
    attempts: int = 0
    last_error: str = ""


_COUNTERS = ("submitted", "sent", "failed_attempts", "retried", "dead_lettered", "dropped")


class _Channel:
    """One notifier with its queue, retry heap, counters and worker thread."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.name = notifier.name
        self.cond = threading.Condition(threading.Lock())
        self.ready: collections.deque[_Job] = collections.deque()
        self.retry: list[tuple[float, int, _Job]] = []  # heap of (due, seq, job), monotonic time
        self.pending = 0  # ready + waiting for retry + in flight
        self.in_flight = False
        self.stopped = False  # set by close(): the worker exits
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self.thread: threading.Thread | None = None


class DeliveryQueue:
    """Asynchronous, retrying delivery of notifications to several channels.

    Parameters
    ----------
    notifiers : iterable of Notifier
        The channels, keyed by their ``name`` (must be unique).
    capacity : int
        Largest number of deliveries pending per channel (queued, waiting
        for a retry or in flight).  Beyond it ``submit`` drops, counts and
        dead-letters with reason ``"queue_full"``.
    retry : RetryPolicy, optional
        Attempts and back-off.
    dead_letter_capacity : int
        Dead letters kept in memory (oldest evicted first, counted).
    on_dead_letter : callable, optional
        ``f(dead_letter)``, called on a dedicated thread (never on the
        caller's or a channel's); its exceptions are logged and counted.
    clock : Clock, optional
        Timestamps of dead letters.
    rng : random.Random, optional
        Jitter source; pass a seeded one for reproducible delays.

    Examples
    --------
    >>> from wedmetrics.alerting.notifiers import LogNotifier
    >>> from wedmetrics.alerting.notification import Notification
    >>> with DeliveryQueue([LogNotifier()]) as q:
    ...     q.submit(Notification("a1", "HighLatency", "firing", "info", starts_at=0.0))
    ...     q.flush(5.0)
    1
    True
    """

    def __init__(
        self,
        notifiers: Iterable[Notifier],
        *,
        capacity: int = 1000,
        retry: RetryPolicy | None = None,
        dead_letter_capacity: int = 1000,
        on_dead_letter: Callable[[DeadLetter], Any] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        for field, v in (("capacity", capacity), ("dead_letter_capacity", dead_letter_capacity)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DeliveryQueue.{field} must be an int >= 1, got {v!r}")
        if on_dead_letter is not None and not callable(on_dead_letter):
            raise TypeError("DeliveryQueue.on_dead_letter must be callable")
        self._channels: dict[str, _Channel] = {}
        for n in notifiers:
            if not isinstance(n, Notifier):
                raise TypeError(f"DeliveryQueue: expected Notifier objects, got {type(n).__name__}")
            if n.name in self._channels:
                raise ValueError(f"DeliveryQueue: two channels named {n.name!r}; give them distinct name=")
            self._channels[n.name] = _Channel(n)
        if not self._channels:
            raise ValueError("DeliveryQueue needs at least one notifier")
        self.capacity = capacity
        self.retry = retry or RetryPolicy()
        self._clock = clock or WallClock()
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._seq = itertools.count()
        self._closing = False
        self._stopped = False

        self._dead_lock = threading.Condition(threading.Lock())
        self._dead: collections.deque[DeadLetter] = collections.deque(maxlen=dead_letter_capacity)
        self._dead_evicted = 0
        self._callback = on_dead_letter
        self._callback_queue: collections.deque[DeadLetter] = collections.deque()
        self._callback_busy = False
        self._callback_errors = 0
        self._callback_dropped = 0
        self._callback_thread: threading.Thread | None = None

        for ch in self._channels.values():
            ch.thread = threading.Thread(target=self._work, args=(ch,), name=f"wedmetrics-notify-{ch.name}", daemon=True)
            ch.thread.start()
        if on_dead_letter is not None:
            self._callback_thread = threading.Thread(
                target=self._run_callbacks, name="wedmetrics-notify-deadletters", daemon=True
            )
            self._callback_thread.start()

    # ------------------------------------------------------------------ public

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names, in the order given."""
        return tuple(self._channels)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The worker threads (for tests and health checks)."""
        ts = [ch.thread for ch in self._channels.values() if ch.thread is not None]
        if self._callback_thread is not None:
            ts.append(self._callback_thread)
        return tuple(ts)

    def submit(self, message: Notification | NotificationGroup, channels: Iterable[str] | None = None) -> int:
        """Queue ``message`` for delivery; returns at once.

        Parameters
        ----------
        message : Notification or NotificationGroup
        channels : iterable of str, optional
            Channel names to deliver to; all channels when omitted.

        Returns
        -------
        int
            Deliveries queued (one per channel, or per recipient for
            channels with several targets).  Deliveries that did not fit,
            or arrived after :meth:`close`, are counted as ``dropped`` and
            dead-lettered instead.

        Raises
        ------
        ValueError
            For an unknown channel name.
        """
        group = as_group(message)
        if channels is None:
            selected = list(self._channels.values())
        else:
            if isinstance(channels, str):
                channels = (channels,)
            selected = []
            for name in channels:
                ch = self._channels.get(name)
                if ch is None:
                    raise ValueError(f"DeliveryQueue.submit: unknown channel {name!r}; known: {sorted(self._channels)}")
                selected.append(ch)
        queued = 0
        for ch in selected:
            for target in ch.notifier.targets():
                with ch.cond:
                    if self._closing:
                        reason, why = REASON_CLOSED, "submitted after close()"
                    elif ch.pending >= self.capacity:
                        reason, why = REASON_QUEUE_FULL, f"channel queue full ({self.capacity} pending)"
                    else:
                        ch.ready.append(_Job(group, target))
                        ch.pending += 1
                        ch.counts["submitted"] += 1
                        ch.cond.notify_all()
                        queued += 1
                        continue
                    ch.counts["dropped"] += 1
                    ch.counts["dead_lettered"] += 1
                self._record_dead(DeadLetter(group, ch.name, target, 0, reason, why, self._clock.now()))
        return queued

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every channel is idle (nothing queued, retrying or in flight).

        Returns
        -------
        bool
            True if idle, False if ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for ch in self._channels.values():
            with ch.cond:
                while ch.pending:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    ch.cond.wait(remaining)
        if self._callback is not None:
            with self._dead_lock:
                while self._callback_queue or self._callback_busy:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._dead_lock.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Stop accepting, finish what can be finished, join the threads.

        Deliveries already queued get their pending attempt within
        ``timeout`` seconds; retries waiting on back-off are not waited for.
        Whatever is left when the time is up is dead-lettered with reason
        ``"closed"``.  Idempotent.

        Returns
        -------
        bool
            True if every thread ended (a notifier stuck in a network call
            past its own timeout can keep its daemon thread alive).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        for ch in self._channels.values():
            with ch.cond:
                self._closing = True
                # Interrupts back-off waits: the worker stops waiting for retries.
                ch.cond.notify_all()
        for ch in self._channels.values():
            with ch.cond:
                while ch.ready or ch.in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    ch.cond.wait(remaining)
                leftovers = list(ch.ready) + [job for _, _, job in ch.retry]
                ch.ready.clear()
                ch.retry.clear()
                for job in leftovers:
                    why = job.last_error or "queue closed before delivery"
                    self._record_dead(
                        DeadLetter(job.message, ch.name, job.target, job.attempts, REASON_CLOSED, why, self._clock.now())
                    )
                ch.pending -= len(leftovers)
                ch.counts["dead_lettered"] += len(leftovers)
                ch.stopped = True
                ch.cond.notify_all()
        joined = True
        for ch in self._channels.values():
            assert ch.thread is not None
            ch.thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
            joined &= not ch.thread.is_alive()
        if self._callback_thread is not None:
            with self._dead_lock:
                self._stopped = True
                self._dead_lock.notify_all()
            self._callback_thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
            joined &= not self._callback_thread.is_alive()
        return joined

    def __enter__(self) -> "DeliveryQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dead_letters(self, channel: str | None = None) -> list[DeadLetter]:
        """Dead letters still in memory, oldest first, optionally of one channel."""
        with self._dead_lock:
            items = list(self._dead)
        return [d for d in items if channel is None or d.channel == channel]

    def stats(self) -> dict[str, Any]:
        """Delivery counters.

        Returns
        -------
        dict
            ``{"channels": {name: {submitted, sent, failed_attempts, retried,
            dead_lettered, dropped, pending}}, "dead_letters_kept",
            "dead_letters_evicted", "callback_errors", "callback_dropped"}``.
            ``failed_attempts`` counts every failed try, ``retried`` the ones
            followed by another try, ``dropped`` the deliveries refused at
            ``submit`` (also counted in ``dead_lettered``).
        """
        out: dict[str, Any] = {"channels": {}}
        for ch in self._channels.values():
            with ch.cond:
                c = dict(ch.counts)
                c["pending"] = ch.pending
            out["channels"][ch.name] = c
        with self._dead_lock:
            out["dead_letters_kept"] = len(self._dead)
            out["dead_letters_evicted"] = self._dead_evicted
            out["callback_errors"] = self._callback_errors
            out["callback_dropped"] = self._callback_dropped
        return out

    def __repr__(self) -> str:
        state = "closed" if self._closing else "open"
        return f"DeliveryQueue(channels={list(self._channels)!r}, capacity={self.capacity}, {state})"

    # ------------------------------------------------------------------ worker

    def _next_job(self, ch: _Channel) -> _Job | None:
        """Block until a job is ready (or a retry is due); None once stopped."""
        with ch.cond:
            while True:
                if ch.stopped:
                    return None
                if ch.ready:
                    job = ch.ready.popleft()
                    break
                now = time.monotonic()
                if ch.retry and not self._closing:
                    due = ch.retry[0][0]
                    if due <= now:
                        job = heapq.heappop(ch.retry)[2]
                        break
                    ch.cond.wait(due - now)
                else:
                    ch.cond.wait()
            ch.in_flight = True
            return job

    def _work(self, ch: _Channel) -> None:
        while True:
            job = self._next_job(ch)
            if job is None:
                return
            job.attempts += 1
            error: BaseException | None = None
            try:
                ch.notifier.deliver(job.message, job.target)
            except DeliveryError as e:
                error = e
            except Exception as e:  # a bug in a notifier must not kill the channel
                error = DeliveryError(f"{ch.name}: unexpected {type(e).__name__}: {e}", channel=ch.name, permanent=True)
            dead: DeadLetter | None = None
            delay = 0.0
            with ch.cond:
                ch.in_flight = False
                if error is None:
                    ch.counts["sent"] += 1
                    ch.pending -= 1
                else:
                    assert isinstance(error, DeliveryError)
                    job.last_error = str(error)
                    ch.counts["failed_attempts"] += 1
                    if error.permanent:
                        reason = REASON_PERMANENT
                    elif job.attempts >= self.retry.max_attempts:
                        reason = REASON_RETRIES_EXHAUSTED
                    elif self._closing:
                        reason = REASON_CLOSED
                    else:
                        reason = ""
                    if reason:
                        ch.counts["dead_lettered"] += 1
                        ch.pending -= 1
                        dead = DeadLetter(job.message, ch.name, job.target, job.attempts, reason, job.last_error, self._clock.now())
                        # Recorded before flush() can see pending drop to zero.
                        # Lock order is always ch.cond -> _dead_lock.
                        self._record_dead(dead)
                    else:
                        with self._rng_lock:
                            delay = self.retry.delay(job.attempts, self._rng, error.retry_after)
                        ch.counts["retried"] += 1
                        heapq.heappush(ch.retry, (time.monotonic() + delay, next(self._seq), job))
                ch.cond.notify_all()
            # Log outside the lock: handlers do I/O and submit() contends for it.
            if error is not None and dead is None:
                log.warning(
                    "channel %s: attempt %d/%d failed (%s); retrying in %.3fs",
                    ch.name, job.attempts, self.retry.max_attempts, job.last_error, delay,
                )
            if dead is not None:
                log.error(
                    "channel %s: giving up on %s after %d attempt(s) [%s]: %s",
                    ch.name, dead.message.group_key, dead.attempts, dead.reason, dead.error,
                )

    # ------------------------------------------------------------------ dead letters

    def _record_dead(self, dead: DeadLetter) -> None:
        with self._dead_lock:
            if len(self._dead) == self._dead.maxlen:
                self._dead_evicted += 1
            self._dead.append(dead)
            if self._callback is not None:
                # Same bound as the in-memory list: a flood of drops must not
                # grow memory while the callback is slow.
                if len(self._callback_queue) >= (self._dead.maxlen or 0):
                    self._callback_dropped += 1
                else:
                    self._callback_queue.append(dead)
                    self._dead_lock.notify_all()

    def _run_callbacks(self) -> None:
        assert self._callback is not None
        while True:
            with self._dead_lock:
                while not self._callback_queue and not self._stopped:
                    self._dead_lock.wait()
                if not self._callback_queue:
                    return
                dead = self._callback_queue.popleft()
                self._callback_busy = True
            try:
                self._callback(dead)
            except Exception:
                log.exception("on_dead_letter callback failed for channel %s", dead.channel)
                with self._dead_lock:
                    self._callback_errors += 1
            finally:
                with self._dead_lock:
                    self._callback_busy = False
                    self._dead_lock.notify_all()
