"""The storage contract: memory, SQLite, PostgreSQL (plain) and TimescaleDB all pass it."""
from __future__ import annotations

import math

import numpy as np
import pytest

import wedmetrics as wm
from wedmetrics.buckets import BucketBatch, SeriesKey
from wedmetrics.storage import AlertEvent, InvalidKeyError, StorageBackend

from .helpers import make_batch, minute_batch

ALPHA = 0.01
T0 = 1_700_000_040.0          # a whole minute (and a whole 5 minutes)


def lower_quantile(values, q):
    v = np.sort(np.asarray(values).ravel())
    return v[int(math.floor(q * (len(v) - 1)))]


class TestBackendContract:
    def test_is_a_storage_backend(self, make_backend):
        assert isinstance(make_backend(), StorageBackend)

    def test_round_trip_sorted_and_half_open_range(self, make_backend):
        b = make_backend()
        key = SeriesKey.of("api.latency", {"route": "/photos"})
        batch, values = minute_batch(key, T0, 30, seed=1, local_id=7)
        shuffled = batch.take(np.random.default_rng(0).permutation(30))
        assert b.write_buckets(shuffled) == 30
        got = b.read_buckets(key, 60.0, T0 + 60, T0 + 20 * 60)
        assert len(got) == 19
        np.testing.assert_array_equal(got.start, T0 + 60 * np.arange(1, 20))
        np.testing.assert_array_equal(got.count, np.full(19, 5))
        np.testing.assert_allclose(got.sum, values[1:20].sum(axis=1), rtol=1e-12)
        np.testing.assert_array_equal(got.min, values[1:20].min(axis=1))
        np.testing.assert_array_equal(got.max, values[1:20].max(axis=1))
        assert got.sketch == [batch.sketch[i] for i in range(1, 20)]
        assert set(got.keys.values()) == {key}
        assert len(b.read_buckets(key, 300.0, T0, T0 + 3600)) == 0
        assert len(b.read_buckets(SeriesKey.of("other"), 60.0, T0, T0 + 3600)) == 0

    def test_writes_are_idempotent(self, make_backend):
        b = make_backend()
        key = SeriesKey.of("jobs", kind="counter")
        batch, _ = minute_batch(key, T0, 20, seed=2)
        assert b.write_buckets(batch.take(slice(0, 12))) == 12
        # a retried batch that had partly committed: only the new rows count
        assert b.write_buckets(batch) == 8
        assert b.write_buckets(batch) == 0
        got = b.read_buckets(key, 60.0, 0, 2e9)
        assert len(got) == 20 and int(got.count.sum()) == 100

    def test_merged_percentiles_across_series_and_instances(self, make_backend):
        # two service instances, each with its own engine-local ids, same database
        one, two = make_backend("org-a"), make_backend("org-a")
        keys = {0: SeriesKey.of("api.latency", {"route": "/a", "host": "h1"}),
                1: SeriesKey.of("api.latency", {"route": "/b", "host": "h1"})}
        rng = np.random.default_rng(3)
        all_values, a_values = [], []
        for backend, host in ((one, "h1"), (two, "h2")):
            ks = {i: SeriesKey.of(k.name, {**k.label_dict, "host": host}) for i, k in keys.items()}
            rows = []
            for i in range(40):
                for local in (0, 1):
                    vals = rng.lognormal(0.0, 1.5, size=7).tolist()
                    rows.append((local, 60.0, T0 + 60 * i, vals))
                    all_values.extend(vals)
                    if local == 0:
                        a_values.extend(vals)
            backend.write_buckets(make_batch(rows, ks))
        s = one.read_merged("api.latency", 60.0, T0, T0 + 3600)
        assert s.count == len(all_values)
        assert s.sum == pytest.approx(sum(all_values), rel=1e-12)
        assert s.min == min(all_values) and s.max == max(all_values)
        for q in (0.5, 0.95, 0.99):
            exact = lower_quantile(all_values, q)
            assert abs(s.quantile(q) - exact) <= ALPHA * exact * 1.0001
        a = two.read_merged("api.latency", 60.0, T0, T0 + 3600, labels={"route": "/a"})
        assert a.count == len(a_values)
        assert abs(a.p95 - lower_quantile(a_values, 0.95)) <= ALPHA * lower_quantile(
            a_values, 0.95) * 1.0001
        empty = one.read_merged("api.latency", 60.0, 0, T0)
        assert empty.count == 0 and math.isnan(empty.p95)
        assert len(one.series_keys("api.latency")) == 4
        assert one.series_keys("nothing") == []

    def test_hostile_names_and_labels_round_trip(self, make_backend):
        b = make_backend()
        hostile = ["x'); DROP TABLE wm_buckets; --", 'quote"d\\back', "ünïcødé ☃ 🎉 中文",
                   "semi;colon", "$1 %s {s} ?", "x" * 10_240, "tab\tnew\nline", ""]
        keys = {i: SeriesKey.of(name, {name: name, "n": str(i)})
                for i, name in enumerate(hostile)}
        rows = [(i, 60.0, T0, [float(i + 1)]) for i in keys]
        assert b.write_buckets(make_batch(rows, keys)) == len(keys)
        assert set(b.series_keys()) == set(keys.values())
        for i, key in keys.items():
            got = b.read_buckets(key, 60.0, T0, T0 + 60)
            assert got.sum.tolist() == [float(i + 1)]
            assert list(got.keys.values()) == [key]
            assert b.series_keys(key.name) == [key]

    @pytest.mark.parametrize("name,labels,where", [
        ("nul\x00name", {}, "series name"),
        ("ok", {"k\x00": "v"}, "label name"),
        ("ok", {"k": "v\x00"}, "label 'k'"),
        ("lone\ud800surrogate", {}, "not valid Unicode"),
    ])
    def test_unstorable_keys_are_refused_before_writing(self, make_backend, name, labels, where):
        b = make_backend()
        good = SeriesKey.of("fine")
        batch = make_batch([(0, 60.0, T0, [1.0]), (1, 60.0, T0, [2.0])],
                           {0: good, 1: SeriesKey.of(name, labels)})
        with pytest.raises(InvalidKeyError, match=where):
            b.write_buckets(batch)
        assert len(b.read_buckets(good, 60.0, 0, 2e9)) == 0

    def test_inconsistent_batch_is_refused(self, make_backend):
        b = make_backend()
        batch, _ = minute_batch(SeriesKey.of("x"), T0, 3)
        batch.keys = {}
        with pytest.raises(ValueError, match="no SeriesKey for series id 0"):
            b.write_buckets(batch)
        batch, _ = minute_batch(SeriesKey.of("x"), T0, 3)
        batch.sketch = batch.sketch[:2]
        with pytest.raises(ValueError, match="sketch has 2 entries"):
            b.write_buckets(batch)

    def test_orgs_never_see_each_other(self, make_backend):
        a, other = make_backend("org-a"), make_backend("org-b")
        key = SeriesKey.of("api.latency", {"route": "/photos"})
        a.write_buckets(minute_batch(key, T0, 5, seed=4)[0])
        other.write_buckets(minute_batch(key, T0, 9, seed=5)[0])
        other.write_buckets(minute_batch(SeriesKey.of("b.only"), T0, 2, seed=6)[0])
        assert a.series_keys() == [key]
        assert len(a.read_buckets(key, 60.0, 0, 2e9)) == 5
        assert len(other.read_buckets(key, 60.0, 0, 2e9)) == 9
        assert a.read_merged("api.latency", 60.0, 0, 2e9).count == 25
        assert a.read_merged("b.only", 60.0, 0, 2e9).count == 0
        ev = AlertEvent("al-1", "latency-high", "firing", "critical", T0)
        other.write_alert_events([ev])
        other.write_rule_state("latency-high", {"state": "firing"}, T0)
        assert a.read_alert_events(0, 2e9) == []
        assert a.read_rule_state("latency-high") is None
        assert a.read_all_rule_states() == {}
        assert a.apply_retention(T0 + 1e6, {"1m": "1s"}) == 5
        assert len(other.read_buckets(key, 60.0, 0, 2e9)) == 9

    def test_alert_events_round_trip_idempotent_and_filtered(self, make_backend):
        b = make_backend()
        events = [
            AlertEvent("al-1", "latency-high", "pending", "warning", T0 + 1,
                       labels={"route": "/photos'; --"}, annotations={"summary": "p95 ☃ high"},
                       value=0.75, wedding_id="w-42"),
            AlertEvent("al-1", "latency-high", "firing", "critical", T0 + 2, value=0.9),
            AlertEvent("al-2", "errors", "firing", "page", T0 + 3, value=None),
        ]
        assert b.write_alert_events(events) == 3
        assert b.write_alert_events(events[1:]) == 0
        got = b.read_alert_events(T0, T0 + 10)
        assert got == events
        assert b.read_alert_events(T0, T0 + 10, rule="errors") == [events[2]]
        assert b.read_alert_events(T0 + 2, T0 + 3) == [events[1]]
        with pytest.raises(ValueError, match="AlertEvent.rule"):
            b.write_alert_events([AlertEvent("x", "bad\x00rule", "firing", "page", T0)])
        with pytest.raises(ValueError, match="AlertEvent.ts"):
            b.write_alert_events([AlertEvent("x", "r", "firing", "page", math.nan)])

    def test_silences_replaced_listed_deleted_and_kept_per_org(self, make_backend):
        b, other = make_backend("org-a"), make_backend("org-b")
        rec = {"id": "s1", "matchers": [{"name": "a", "value": "b", "isRegex": False, "isEqual": True}],
               "starts_at": T0, "ends_at": T0 + 60, "created_by": "ana", "comment": "ünïcode"}
        b.write_silence("s1", rec, T0)
        b.write_silence("s1", dict(rec, ends_at=T0 + 30), T0 + 1)
        b.write_silence("s2", dict(rec, id="s2"), T0 + 2)
        other.write_silence("s9", dict(rec, id="s9"), T0)
        got = b.read_silences()
        assert sorted(got) == ["s1", "s2"] and got["s1"]["ends_at"] == T0 + 30
        assert got["s1"]["comment"] == "ünïcode"
        assert b.delete_silences(["s2", "missing"]) == 1
        assert sorted(b.read_silences()) == ["s1"] and sorted(other.read_silences()) == ["s9"]
        with pytest.raises(ValueError, match="not JSON-able"):
            b.write_silence("s3", {"x": math.nan}, T0)

    def test_rule_state_replaced_and_listed(self, make_backend):
        b = make_backend()
        b.write_rule_state("latency-high", {"state": "pending", "since": 1.5, "n": [1, 2]}, T0)
        b.write_rule_state("latency-high", {"state": "firing", "since": 2.5}, T0 + 10)
        b.write_rule_state("errors", {}, T0 + 11)
        st = b.read_rule_state("latency-high")
        assert (st.rule, st.state, st.updated_at) == ("latency-high",
                                                      {"state": "firing", "since": 2.5}, T0 + 10)
        assert set(b.read_all_rule_states()) == {"latency-high", "errors"}
        assert b.read_rule_state("missing") is None
        with pytest.raises(ValueError, match="not JSON-able"):
            b.write_rule_state("r", {"x": object()}, T0)
        with pytest.raises(ValueError, match="not JSON-able"):
            b.write_rule_state("r", {"x": math.nan}, T0)

    def test_retention_by_resolution(self, make_backend):
        b = make_backend(retention={"1m": "10m"})
        key = SeriesKey.of("api.latency")
        b.write_buckets(minute_batch(key, T0, 30, seed=7)[0])
        b.write_buckets(minute_batch(key, T0, 6, seed=8, width=300.0)[0])
        now = T0 + 30 * 60
        assert b.apply_retention(now) == 20          # starts before now - 10 min
        kept = b.read_buckets(key, 60.0, 0, 2e9)
        assert kept.start[0] == now - 600 and len(kept) == 10
        assert len(b.read_buckets(key, 300.0, 0, 2e9)) == 6     # no rule for 5m
        assert b.apply_retention(now, {"5m": "15m"}) == 3
        assert b.apply_retention(now) == 0


class TestSeveralWriters:
    """Several processes (backend instances, each its own writer) storing one series."""

    def test_two_writers_of_the_same_buckets_both_count(self, make_backend):
        one, two = make_backend("org-a"), make_backend("org-a")
        assert one.writer_id != two.writer_id
        key = SeriesKey.of("api.latency", {"route": "/photos"})
        b1, v1 = minute_batch(key, T0, 10, seed=11, local_id=3)
        b2, v2 = minute_batch(key, T0 + 300, 10, seed=12, local_id=0)   # overlaps 5 minutes
        assert one.write_buckets(b1) == 10
        assert two.write_buckets(b2) == 10
        for reader in (one, two, make_backend("org-a")):
            got = reader.read_buckets(key, 60.0, 0, 2e9)
            np.testing.assert_array_equal(got.start, T0 + 60 * np.arange(15))
            np.testing.assert_array_equal(got.count, [5] * 5 + [10] * 5 + [5] * 5)
            both = [np.r_[v1[i], v2[i - 5]] if 5 <= i < 10 else (v1[i] if i < 5 else v2[i - 5])
                    for i in range(15)]
            np.testing.assert_allclose(got.sum, [b.sum() for b in both], rtol=1e-12)
            np.testing.assert_array_equal(got.min, [b.min() for b in both])
            np.testing.assert_array_equal(got.max, [b.max() for b in both])
            assert set(got.keys.values()) == {key}
            for i in (4, 7):
                merged = wm.Sketch.from_bytes(got.sketch[i])
                assert merged.count == len(both[i])
                for q in (0.5, 1.0):
                    exact = lower_quantile(both[i], q)
                    assert abs(merged.quantile(q) - exact) <= ALPHA * exact * 1.0001
        everything = np.r_[v1.ravel(), v2.ravel()]
        s = two.read_merged("api.latency", 60.0, 0, 2e9)
        assert s.count == 100 and s.sum == pytest.approx(everything.sum(), rel=1e-12)
        exact = lower_quantile(everything, 0.95)
        assert abs(s.p95 - exact) <= ALPHA * exact * 1.0001
        # each writer's own rows, the other's left out
        mine = one.read_buckets(key, 60.0, 0, 2e9, exclude_writer=two.writer_id)
        assert mine.count.tolist() == [5] * 10 and mine.sketch == b1.sketch
        theirs = one.read_buckets(key, 60.0, T0 + 360, 2e9, exclude_writer=one.writer_id)
        assert theirs.sketch == b2.sketch[1:]
        # and one writer's rows alone (a restart resuming its own buckets)
        only = two.read_buckets(key, 60.0, 0, 2e9, only_writer=one.writer_id)
        assert only.count.tolist() == [5] * 10 and only.sketch == b1.sketch
        only = one.read_buckets(key, 60.0, T0 + 360, 2e9, only_writer=two.writer_id)
        assert only.sketch == b2.sketch[1:]

    def test_a_retry_stays_exactly_once_beside_another_writer(self, make_backend):
        one, two = make_backend("org-a"), make_backend("org-a")
        key = SeriesKey.of("jobs", kind="counter")
        batch, _ = minute_batch(key, T0, 20, seed=13)
        assert one.write_buckets(batch.take(slice(0, 12))) == 12
        assert two.write_buckets(batch) == 20           # another process's rows
        assert one.write_buckets(batch) == 8            # a retry: only what was missing
        assert one.write_buckets(batch) == 0
        assert two.write_buckets(batch.take(slice(5, 9))) == 0
        got = make_backend("org-a").read_buckets(key, 60.0, 0, 2e9)
        assert len(got) == 20 and got.count.tolist() == [10] * 20
        # a writer id given twice is one writer: the second copy is a retry
        again = make_backend("org-a", writer_id=one.writer_id)
        assert again.write_buckets(batch) == 0

    def test_writer_id_is_checked(self, make_backend):
        with pytest.raises(ValueError, match="writer_id must be an int"):
            make_backend("org-a", writer_id=-5)
        assert make_backend("org-a", writer_id=0).writer_id == 0

    def test_two_engines_give_the_global_p95_of_one(self, make_backend):
        """The issue's scenario: two service instances record the same series into
        the same buckets; storage answers as one engine fed all their points."""
        rng = np.random.default_rng(14)
        t1 = T0                    # a whole minute: two minute buckets
        parts = [rng.lognormal(-2.0, 1.0, size=600), rng.lognormal(-1.0, 0.7, size=300)]
        times = []
        for values in parts:
            engine = wm.MetricsEngine(clock=wm.ManualClock(t1), storage=make_backend("org-a"),
                                      flush_options={"thread": False})
            h = engine.series("lat", labels={"r": "a"})
            ts = t1 + np.arange(len(values)) * (119.0 / len(values))   # two minutes
            times.append(ts)
            engine.record_many(np.full(len(values), h.id), ts, values)
            engine.close()
        everything = np.concatenate(parts)
        whole_clock = wm.ManualClock(t1)
        whole = wm.MetricsEngine(clock=whole_clock)
        hw = whole.series("lat", labels={"r": "a"})
        order = np.argsort(np.concatenate(times), kind="stable")
        whole.record_many(np.full(len(order), hw.id), np.concatenate(times)[order],
                          everything[order])
        whole_clock.set(t1 + 600)
        single = whole.query(hw, last="10m")
        reader = make_backend("org-a")
        key = SeriesKey.of("lat", {"r": "a"})
        for width in (1.0, 60.0, 300.0, 3600.0):
            rows = reader.read_buckets(key, width, 0, 2e9)
            assert int(rows.count.sum()) == len(everything), width
            assert len(np.unique(rows.start)) == len(rows), width
        minutes = reader.read_buckets(key, 60.0, 0, 2e9)
        per_minute = np.bincount(((np.concatenate(times) - t1) // 60).astype(int))
        assert minutes.count.tolist() == per_minute.tolist() and len(per_minute) == 2
        merged = reader.read_merged("lat", 60.0, 0, 2e9)
        assert merged.count == single.count == len(everything)
        assert merged.sum == pytest.approx(everything.sum(), rel=1e-9)
        assert (merged.min, merged.max) == (everything.min(), everything.max())
        for q in (0.5, 0.95, 0.99):
            assert merged.quantile(q) == pytest.approx(single.quantile(q), rel=2 * ALPHA)
            exact = lower_quantile(everything, q)
            assert abs(merged.quantile(q) - exact) <= ALPHA * exact * 1.0001
        whole.close()

    def test_distinct_events_of_one_alert_at_one_instant_are_all_kept(self, make_backend):
        one, two = make_backend("org-a"), make_backend("org-a")
        noise = AlertEvent("al-1", "latency-high", "feedback", "info", T0,
                           annotations={"verdict": "false_positive", "by": "ana"})
        useful = AlertEvent("al-1", "latency-high", "feedback", "info", T0,
                            annotations={"verdict": "confirmed", "by": "ben"})
        assert one.write_alert_events([noise]) == 1
        assert two.write_alert_events([useful, noise]) == 1     # noise: already stored
        assert one.write_alert_events([noise, useful]) == 0
        got = make_backend("org-a").read_alert_events(T0, T0 + 1)
        assert sorted(got, key=lambda e: e.annotations["by"]) == [noise, useful]
        assert got == one.read_alert_events(T0, T0 + 1)       # one stable order

    @pytest.mark.parametrize("rows", [1, 499, 500, 1_234, 20_001])
    def test_bulk_batch_sizes_round_trip_exactly(self, make_backend, rows):
        # batch sizes around the backends' internal splits: SQLite binds 500
        # rows per statement, PostgreSQL streams COPY in 20,000-row chunks
        b = make_backend()
        rng = np.random.default_rng(rows)
        series = 3
        keys = {i: SeriesKey.of("bulk", {"s": str(i)}) for i in range(series)}
        sid = np.sort(rng.integers(0, series, size=rows))          # series by series
        start = np.empty(rows)
        for i in range(series):
            at = np.flatnonzero(sid == i)
            start[at] = T0 + 60.0 * np.arange(len(at))
        # sketches of several sizes, as real ones are
        pool = []
        for size in (1, 4, 40, 400):
            s = wm.Sketch(ALPHA)
            for v in rng.lognormal(0.0, 2.0, size=size):
                s.add(float(v))
            pool.append(s.to_bytes())
        batch = BucketBatch(sid.astype(np.int64), np.full(rows, 60.0), start,
                            rng.integers(0, 10**12, size=rows), rng.normal(size=rows),
                            -rng.random(rows), rng.random(rows),
                            [pool[j] for j in rng.integers(0, len(pool), size=rows)], keys)
        assert b.write_buckets(batch) == rows
        assert b.write_buckets(batch) == 0
        for i, key in keys.items():
            at = np.flatnonzero(sid == i)
            got = b.read_buckets(key, 60.0, 0, 2e9)
            np.testing.assert_array_equal(got.start, start[at])
            np.testing.assert_array_equal(got.count, batch.count[at])
            np.testing.assert_array_equal(got.sum, batch.sum[at])
            np.testing.assert_array_equal(got.min, batch.min[at])
            np.testing.assert_array_equal(got.max, batch.max[at])
            assert got.sketch == [batch.sketch[j] for j in at]

    def test_any_int64_engine_ids(self, make_backend):
        # engine-local ids are only labels of batch.keys: negative and huge ones work too
        b = make_backend()
        ids = [-7, 0, 3, 2**62]
        keys = {i: SeriesKey.of("ids", {"id": str(i)}) for i in ids}
        rows = [(i, 60.0, T0 + 60 * k, [float(n + 1)]) for n, i in enumerate(ids)
                for k in range(4)]
        assert b.write_buckets(make_batch(rows, keys)) == 16
        for n, i in enumerate(ids):
            got = b.read_buckets(keys[i], 60.0, 0, 2e9)
            assert got.count.tolist() == [1] * 4 and got.max.tolist() == [n + 1.0] * 4
