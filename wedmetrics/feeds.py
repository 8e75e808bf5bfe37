"""Fan-out of an engine's closed buckets to several consumers (storage, exporters).

The compiled core has one outbox: a bucket drained from it is gone.  Two
consumers draining it directly would each see only part of the stream, so
the engine drains the core through :class:`ClosedFeeds`, which hands every
drained batch to every subscriber.  Each subscriber keeps what it has not
taken yet; a subscriber sees the buckets drained after it subscribed.
"""
from __future__ import annotations

import threading
from typing import Callable

from .buckets import BucketBatch

__all__ = ["ClosedFeeds"]


class ClosedFeeds:
    """Subscribers of one drain function; each ``take`` returns that subscriber's share.

    Parameters
    ----------
    drain : callable
        Returns the core's closed buckets not yet handed out
        (:class:`~wedmetrics.BucketBatch`).

    Examples
    --------
    >>> from wedmetrics.buckets import BucketBatch
    >>> feeds = ClosedFeeds(BucketBatch.empty)
    >>> storage, exporter = feeds.subscribe(), feeds.subscribe()
    >>> len(storage()), len(exporter())
    (0, 0)
    """

    def __init__(self, drain: Callable[[], BucketBatch]) -> None:
        self._drain = drain
        self._pending: list[list[BucketBatch]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def subscribe(self, after_take: Callable[[], None] | None = None
                  ) -> Callable[[], BucketBatch]:
        """A new subscriber: a function returning its buckets not yet taken.

        ``after_take`` runs under the feeds' lock right after each take, while
        no other subscriber can drain: what the subscriber has taken is then
        exactly what the core had closed by its own drain.
        """
        mine: list[BucketBatch] = []
        with self._lock:
            self._pending.append(mine)

        def take() -> BucketBatch:
            with self._lock:
                batch = self._drain()
                if len(batch):
                    for pending in self._pending:
                        pending.append(batch)
                out = BucketBatch.concat(mine) if len(mine) != 1 else mine[0]
                mine.clear()
                if after_take is not None:
                    after_take()
            return out
        return take
