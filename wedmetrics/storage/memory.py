"""MemoryBackend: the storage contract kept in dicts, for tests and short-lived processes."""
from __future__ import annotations

import json
import math
import threading
from typing import Iterable

from ..aggregation import WindowStats
from ..buckets import BucketBatch, SeriesKey
from .base import (AlertEvent, Lease, RuleState, batch_from_rows, check_batch, check_org_id,
                   check_writer_id, labels_match, merge_rows, parse_retention, state_json)

from .base import silence_json

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Keeps closed buckets, alert events and rule state in process memory.

    Behaves exactly like the database backends (same contract tests), so it
    is the reference they are compared with.  Several ``MemoryBackend``
    objects may share one ``store`` to model several orgs in one place.

    Parameters
    ----------
    org_id : str
        Tenant whose rows this backend reads and writes.
    retention : dict, optional
        Keep per resolution, e.g. ``{"1s": "1d", "1m": "30d"}``, applied by
        :meth:`apply_retention`.
    store : dict, optional
        Shared state of several backends (see :meth:`shared_store`).
    writer_id : int, optional
        Identity of this writer in ``[0, 2**63 - 1]``, stored with every
        bucket row; random by default.  Backends sharing a ``store`` with
        different writer ids model several processes writing one database.
    """

    def __init__(self, org_id: str = "default", retention: dict | None = None,
                 store: dict | None = None, writer_id: int | None = None) -> None:
        self.org_id = check_org_id(org_id)
        self.fixed_writer = writer_id is not None
        self.writer_id = check_writer_id(writer_id)
        self.retention = parse_retention(retention)
        self._store = store if store is not None else self.shared_store()
        self._lock = self._store["lock"]
        self._closed = False

    @staticmethod
    def shared_store() -> dict:
        """A fresh store for several orgs' backends to share."""
        return {"lock": threading.RLock(), "series": {}, "buckets": {}, "events": {},
                "rules": {}, "silences": {}, "writer_series": {}, "leases": {}}

    def _org(self, table: str) -> dict:
        return self._store.setdefault(table, {}).setdefault(self.org_id, {})

    # -- buckets ------------------------------------------------------------
    def _series_id(self, key: SeriesKey) -> int:
        series = self._org("series")
        sid = series.get(key)
        if sid is None:
            sid = series[key] = len(series) + 1
        return sid

    def write_buckets(self, batch: BucketBatch, *, partial_after: float = math.inf) -> int:
        check_batch(batch)
        written = 0
        with self._lock:
            buckets = self._org("buckets")
            ids = {local: self._series_id(key) for local, key in batch.keys.items()}
            writer = self.writer_id
            self._org("writer_series").setdefault(writer, set()).update(ids.values())
            cols = zip(batch.series.tolist(), batch.width.tolist(), batch.start.tolist(),
                       batch.count.tolist(), batch.sum.tolist(), batch.min.tolist(),
                       batch.max.tolist(), batch.sketch)
            for local, width, start, count, total, lo, hi, blob in cols:
                # (series, width) -> start -> writer -> row (+ partial flag)
                writers = buckets.setdefault((ids[local], width), {}).setdefault(start, {})
                old = writers.get(writer)
                # a partial row (stored at close() before its end) gives way to
                # the same writer's fuller row of the bucket
                if old is None or (old[6] and count >= old[1]):
                    writers[writer] = (start, count, total, lo, hi, bytes(blob),
                                       start + width > partial_after)
                    written += 1
        return written

    def read_writer_rows(self, writer_id: int, width: float, start: float, end: float,
                         since: dict | None = None) -> dict:
        with self._lock:
            series = self._org("series")
            by_id = {sid: key for key, sid in series.items()}
            if since is None:
                lows = {sid: float(start) for sid in
                        self._org("writer_series").get(int(writer_id), ())}
            else:
                lows = {series[k]: max(float(start), float(v)) for k, v in since.items()
                        if k in series}
            out: dict = {}
            buckets = self._org("buckets")
            for sid in sorted(lows):
                rows = buckets.get((sid, float(width)), {})
                got = [(float(s), rows[s][writer_id][5], bool(rows[s][writer_id][6]))
                       for s in sorted(rows) if lows[sid] <= s < end and writer_id in rows[s]]
                if got:
                    out[by_id[sid]] = got
        return out

    def writer_series(self, writer_id: int) -> list[SeriesKey]:
        with self._lock:
            ids = self._org("writer_series").get(int(writer_id), set())
            return [k for k, sid in self._org("series").items() if sid in ids]

    def read_leases(self) -> list[Lease]:
        with self._lock:
            leases = list(self._org("leases").values())
        return sorted(leases, key=lambda x: -x.heartbeat)

    def hold_lease(self, writer_id: int, host: str, pid: int, token: str, now: float, *,
                   adopt: Lease | None = None) -> bool:
        with self._lock:
            leases = self._org("leases")
            if adopt is not None and leases.get(int(writer_id)) != adopt:
                return False
            leases[int(writer_id)] = Lease(int(writer_id), host, pid, token, now, now, "live")
            return True

    def renew_lease(self, writer_id: int, token: str, now: float, *,
                    state: str = "live") -> bool:
        with self._lock:
            leases = self._org("leases")
            old = leases.get(int(writer_id))
            if old is None or old.token != token:
                return False
            leases[int(writer_id)] = Lease(old.writer_id, old.host, old.pid, token, old.started,
                                           now, state)
            return True

    def read_buckets(self, key: SeriesKey, width: float, start: float, end: float, *,
                     exclude_writer: int | None = None,
                     only_writer: int | None = None) -> BucketBatch:
        with self._lock:
            sid = self._org("series").get(key)
            if sid is None:
                return BucketBatch.empty()
            rows = self._org("buckets").get((sid, float(width)), {})
            chosen = [rows[s][w][:6] for s in sorted(s for s in rows if start <= s < end)
                      for w in sorted(rows[s])
                      if w != exclude_writer and (only_writer is None or w == only_writer)]
        return batch_from_rows(key, sid, float(width), chosen)

    def read_merged(self, name: str, width: float, start: float, end: float,
                    labels: dict | None = None) -> WindowStats:
        keys = [k for k in self.series_keys(name) if labels_match(k.labels, labels)]
        parts = [self.read_buckets(k, width, start, end) for k in keys]
        batch = BucketBatch.concat(parts)
        return merge_rows(batch.count, batch.sum, batch.min, batch.max, batch.sketch,
                          start, end)

    def series_keys(self, name: str | None = None) -> list[SeriesKey]:
        with self._lock:
            keys = list(self._org("series"))
        return [k for k in keys if name is None or k.name == name]

    # -- alerts ---------------------------------------------------------------
    def write_alert_events(self, events: Iterable[AlertEvent]) -> int:
        events = list(events)
        for e in events:
            e.check()
        written = 0
        with self._lock:
            stored = self._org("events")
            for e in events:
                if e.identity not in stored:
                    stored[e.identity] = e.to_row()   # a copy: later edits to e's dicts stay out
                    written += 1
        return written

    def read_alert_events(self, start: float, end: float,
                          rule: str | None = None) -> list[AlertEvent]:
        with self._lock:
            rows = list(self._org("events").values())
        out = [AlertEvent.from_row(r) for r in rows
               if start <= r[7] < end and (rule is None or r[1] == rule)]
        return sorted(out, key=lambda e: (e.ts, e.alert_id, e.status, e.digest))

    def write_rule_state(self, rule: str, state: dict, ts: float) -> None:
        text = state_json(rule, state)
        with self._lock:
            self._org("rules")[rule] = (text, float(ts))

    def read_rule_state(self, rule: str) -> RuleState | None:
        with self._lock:
            row = self._org("rules").get(rule)
        return None if row is None else RuleState(rule, json.loads(row[0]), row[1])

    def read_all_rule_states(self) -> dict[str, RuleState]:
        with self._lock:
            rows = dict(self._org("rules"))
        return {r: RuleState(r, json.loads(t), ts) for r, (t, ts) in rows.items()}

    # -- silences ------------------------------------------------------------------
    def write_silence(self, silence_id: str, record: dict, ts: float) -> None:
        text = silence_json(silence_id, record)
        with self._lock:
            self._store.setdefault("silences", {}).setdefault(self.org_id, {})[silence_id] = text

    def read_silences(self) -> dict[str, dict]:
        with self._lock:
            rows = dict(self._store.setdefault("silences", {}).get(self.org_id, {}))
        return {k: json.loads(v) for k, v in rows.items()}

    def delete_silences(self, silence_ids) -> int:
        with self._lock:
            rows = self._store.setdefault("silences", {}).setdefault(self.org_id, {})
            return sum(rows.pop(i, None) is not None for i in list(silence_ids))

    # -- retention and lifecycle -------------------------------------------------
    def apply_retention(self, now: float, retention: dict | None = None) -> int:
        keep = parse_retention(retention) if retention is not None else self.retention
        removed = 0
        with self._lock:
            for (sid, width), rows in self._org("buckets").items():
                if width not in keep:
                    continue
                cutoff = now - keep[width]
                old = [s for s in rows if s < cutoff]
                for s in old:
                    removed += len(rows.pop(s))
        return removed

    def row_count(self) -> int:
        with self._lock:
            return sum(len(writers) for rows in self._org("buckets").values()
                       for writers in rows.values())

    def close(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        return f"<MemoryBackend org={self.org_id!r} writer={self.writer_id}>"

