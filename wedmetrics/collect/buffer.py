"""The bounded buffer between collection sources and the engine.

Sources produce in bursts (a callable may return thousands of samples at
once) while the engine is fed in batches by one drain thread.  The buffer has
a fixed capacity and an explicit overflow policy, and counts every item it
does not keep, so ``offered == taken + dropped + len(buffer)`` always holds.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

__all__ = ["Sample", "BoundedBuffer", "OVERFLOW_POLICIES"]

#: ``block``: the producer waits for room (up to ``block_timeout``, then the
#: item is dropped as ``block_timeout``); ``drop_oldest``: the oldest buffered
#: item makes room; ``drop_newest``: the incoming item is refused.
OVERFLOW_POLICIES = ("block", "drop_oldest", "drop_newest")

_KINDS = ("distribution", "counter", "gauge")


@dataclass(frozen=True, slots=True)
class Sample:
    """One collected value on its way to the engine.

    Parameters
    ----------
    name : str
        Metric name, e.g. ``"system.cpu.percent"``.
    value : float
        The value: a measurement for distributions, the increment for
        counters, the new level for gauges.
    labels : tuple of (str, str)
        Sorted label pairs; build with :meth:`Sample.of` from a dict.
    kind : str
        ``"distribution"``, ``"counter"`` or ``"gauge"``.
    ts : float or None
        Epoch seconds; ``None`` means "when it was collected".
    """

    name: str
    value: float
    labels: tuple = ()
    kind: str = "gauge"
    ts: "float | None" = None

    @classmethod
    def of(cls, name: str, value: float, labels: "Mapping[str, str] | None" = None,
           kind: str = "gauge", ts: "float | None" = None) -> "Sample":
        """Build a sample from a label dict, checking the fields.

        >>> Sample.of("queue.depth", 3, {"queue": "mail"})
        Sample(name='queue.depth', value=3.0, labels=(('queue', 'mail'),), kind='gauge', ts=None)
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"sample name must be a non-empty string, got {name!r}")
        if kind not in _KINDS:
            raise ValueError(f"sample kind must be one of {_KINDS}, got {kind!r} for {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)  # numpy scalars and Decimals are fine
            except (TypeError, ValueError):
                raise TypeError(f"sample {name!r}: value must be a number, got {value!r}") from None
        pairs = tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items()))
        return cls(name, float(value), pairs, kind, None if ts is None else float(ts))


class BoundedBuffer:
    """A thread-safe FIFO of bounded size with an explicit overflow policy.

    Parameters
    ----------
    capacity : int
        Most items held at once (default 10,000).
    policy : str
        One of :data:`OVERFLOW_POLICIES`.
    block_timeout : float
        Under ``"block"``, how long a producer waits for room before the
        item is dropped and counted as ``block_timeout``.

    Notes
    -----
    Counters, all exact: ``offered`` (every item handed to :meth:`put_many`),
    ``taken`` (handed out by :meth:`get_batch`) and ``dropped`` by reason
    (``drop_oldest``, ``drop_newest``, ``block_timeout``, ``closed``).
    """

    def __init__(self, capacity: int = 10_000, policy: str = "drop_oldest",
                 block_timeout: float = 1.0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"buffer capacity must be an int >= 1, got {capacity!r}")
        if policy not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow policy must be one of {OVERFLOW_POLICIES}, got {policy!r}")
        if not block_timeout >= 0:
            raise ValueError(f"block_timeout must be >= 0 seconds, got {block_timeout!r}")
        self.capacity = capacity
        self.policy = policy
        self.block_timeout = float(block_timeout)
        self._items: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self.offered = 0
        self.taken = 0
        self.dropped: dict[str, int] = {"drop_oldest": 0, "drop_newest": 0,
                                        "block_timeout": 0, "closed": 0}

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item) -> bool:
        """Offer one item; True if it was buffered."""
        return self.put_many((item,)) == 1

    def put_many(self, items: Iterable) -> int:
        """Offer items in order; returns how many were buffered.

        Under ``"drop_oldest"`` an item buffered here may still be evicted
        later by newer ones; that eviction is counted as ``drop_oldest``.
        """
        kept = 0
        with self._lock:
            for item in items:
                self.offered += 1
                if self._closed:
                    self.dropped["closed"] += 1
                    continue
                if len(self._items) >= self.capacity:
                    if self.policy == "drop_newest":
                        self.dropped["drop_newest"] += 1
                        continue
                    if self.policy == "drop_oldest":
                        self._items.popleft()
                        self.dropped["drop_oldest"] += 1
                    elif not self._wait_for_room():
                        reason = "closed" if self._closed else "block_timeout"
                        self.dropped[reason] += 1
                        continue
                self._items.append(item)
                kept += 1
            if kept:
                self._not_empty.notify()
        return kept

    def _wait_for_room(self) -> bool:
        # Caller holds the lock.  monotonic, not the metrics clock: this is a
        # real wait of this thread, whatever time the engine thinks it is.
        deadline = time.monotonic() + self.block_timeout
        self._not_empty.notify_all()   # what this call put so far must be takeable
        while len(self._items) >= self.capacity and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._not_full.wait(left)
        return not self._closed

    def get_batch(self, max_items: int = 4096, timeout: "float | None" = 0.0) -> list:
        """Take up to ``max_items`` oldest items.

        Waits up to ``timeout`` seconds (``None``: until an item arrives or
        the buffer is closed) when the buffer is empty; returns ``[]`` if
        nothing came.
        """
        with self._lock:
            if not self._items and timeout != 0:
                self._not_empty.wait_for(lambda: self._items or self._closed, timeout)
            n = min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            self.taken += n
            if n:
                self._not_full.notify_all()
            return batch

    def close(self) -> None:
        """Refuse new items (counted as ``closed``); buffered ones stay takeable."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def stats(self) -> dict:
        """Counters as a dict: offered, taken, pending, dropped by reason."""
        with self._lock:
            return {"offered": self.offered, "taken": self.taken, "pending": len(self._items),
                    "dropped": dict(self.dropped), "capacity": self.capacity,
                    "policy": self.policy}

    def __repr__(self) -> str:
        return (f"BoundedBuffer(capacity={self.capacity}, policy={self.policy!r}, "
                f"pending={len(self)})")
