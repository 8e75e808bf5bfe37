"""The storage contract: memory, SQLite, PostgreSQL (plain) and TimescaleDB all pass it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from wedmetrics.buckets import SeriesKey
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
