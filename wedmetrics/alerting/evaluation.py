"""The alert lifecycle as a columnar state machine.

Every alert instance (one rule applied to one series, or to a merged
metric) is a row of :class:`StateTable`: its state and the three times the
lifecycle needs.  One tick is :func:`step`: given, per row, whether the
condition holds and whether there was data, it moves every row at once
with numpy, so 10,000 instances cost about as much as a handful.

States follow Prometheus::

    inactive --cond--> pending --cond held `for`--> firing --cond false for
       ^                  |                            |   `keep_firing_for`--> resolved
       +----not cond------+                            |                          |
       +-----------------------------------------------+--------------------------+

* ``for == 0`` goes from inactive straight to firing.
* Hysteresis: while firing, the condition is "not yet recovered" (the value
  has not crossed the recovery threshold), so a value hovering between the
  two thresholds neither fires nor resolves.
* No data: policy ``ok`` reads it as a false condition, ``alert`` as a true
  one, ``keep`` leaves the row untouched (its timers do not move either).

:func:`step` reads no clock and keeps no hidden state: a backtest replaying
history through it gets the same spans as live evaluation.
"""
from __future__ import annotations

import numpy as np

__all__ = ["INACTIVE", "PENDING", "FIRING", "RESOLVED", "STATE_NAMES", "NO_DATA_CODES",
           "StateTable", "step", "TickResult"]

INACTIVE, PENDING, FIRING = 0, 1, 2
#: Only in per-tick results: the row was firing and resolved at this tick
#: (it is inactive afterwards).
RESOLVED = 3
STATE_NAMES = ("inactive", "pending", "firing", "resolved")
NO_DATA_CODES = {"ok": 0, "alert": 1, "keep": 2}
_NO_DATA_ALERT, _NO_DATA_KEEP = 1, 2


class StateTable:
    """Columnar lifecycle state of alert instances (rows), grown on demand.

    Attributes
    ----------
    state : int8 array
        ``INACTIVE``, ``PENDING`` or ``FIRING``.
    active_since : float64 array
        When the condition started holding (pending start); NaN when inactive.
    last_true : float64 array
        Last tick at which the condition held (for ``keep_firing_for``).
    fired_at : float64 array
        When the row last started firing; NaN when never.
    for_s, keep_s, cooldown_s : float64 arrays
        The rule's ``for``, ``keep_firing_for`` and ``cooldown`` per row.
    no_data : int8 array
        :data:`NO_DATA_CODES` of the rule per row.
    pulse : int8 array
        1 for rows that fire for a single evaluation per onset (anomaly
        rules): a firing pulse row resolves at its next evaluation, and the
        rule's ``cooldown`` decides when it may fire again.
    """

    _FLOAT = ("active_since", "last_true", "fired_at", "for_s", "keep_s", "cooldown_s")
    _INT = ("state", "no_data", "pulse")

    def __init__(self, capacity: int = 64) -> None:
        self.n = 0
        cap = max(int(capacity), 1)
        for name in self._FLOAT:
            setattr(self, name, np.full(cap, np.nan))
        for name in self._INT:
            setattr(self, name, np.zeros(cap, dtype=np.int8))

    def add(self, for_s: float, keep_s: float, no_data: str, cooldown_s: float = 0.0,
            pulse: bool = False) -> int:
        """Append an inactive row; returns its index."""
        if self.n == len(self.state):
            self._grow(2 * self.n)
        i = self.n
        self.n += 1
        self.state[i] = INACTIVE
        self.active_since[i] = self.last_true[i] = self.fired_at[i] = np.nan
        self.for_s[i] = for_s
        self.keep_s[i] = keep_s
        self.cooldown_s[i] = cooldown_s
        self.no_data[i] = NO_DATA_CODES[no_data]
        self.pulse[i] = 1 if pulse else 0
        return i

    def _grow(self, cap: int) -> None:
        for name in self._FLOAT + self._INT:
            old = getattr(self, name)
            new = np.full(cap, np.nan) if old.dtype == np.float64 else np.zeros(cap, dtype=old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)

    def view(self, name: str) -> np.ndarray:
        """The live rows of one column."""
        return getattr(self, name)[:self.n]


def step(table: StateTable, rows: np.ndarray, cond: np.ndarray, recovered: np.ndarray,
         has_data: np.ndarray, now: float) -> np.ndarray:
    """Advance ``rows`` of ``table`` to ``now``; returns their per-tick state codes.

    Parameters
    ----------
    table : StateTable
        Updated in place.
    rows : int array
        Row indices to evaluate.
    cond : bool array
        The firing condition per row (``value > threshold`` ...).
    recovered : bool array
        Per row: the value is back on the good side of the recovery
        threshold (equal to ``~cond`` without hysteresis).
    has_data : bool array
        False where the window held no data; the rule's no-data policy
        then decides.
    now : float
        Evaluation time.

    Returns
    -------
    int8 array
        ``INACTIVE``, ``PENDING``, ``FIRING`` or ``RESOLVED`` per row.
    """
    state = table.state[rows]
    no_data = table.no_data[rows]
    missing = ~has_data
    # no data: "alert" = condition true and not recovered; "ok" = false; "keep" = untouched
    alert_nd = missing & (no_data == _NO_DATA_ALERT)
    keep = missing & (no_data == _NO_DATA_KEEP)
    cond = np.where(missing, alert_nd, cond)
    recovered = np.where(missing, ~alert_nd, recovered)
    firing = state == FIRING
    # a pulse row fired at its previous evaluation: it resolves now
    pulse_done = firing & (table.pulse[rows] == 1) & ~keep
    # hysteresis: a firing row stays "in condition" until it has recovered
    holds = np.where(firing, ~recovered, cond) & ~keep & ~pulse_done

    active_since = table.active_since[rows]
    last_true = table.last_true[rows]
    fired_at = table.fired_at[rows]
    for_s = table.for_s[rows]
    keep_s = table.keep_s[rows]

    last_true = np.where(holds, now, last_true)
    starting = holds & (state == INACTIVE)
    active_since = np.where(starting, now, active_since)
    # pending rows (and new ones) fire once the condition has held for `for`
    # ... and, after an earlier onset, once the cooldown has passed
    cooled = ~(now - fired_at < table.cooldown_s[rows])
    promote = holds & (state != FIRING) & (now - active_since >= for_s) & cooled
    new_state = np.where(holds, np.where(promote | firing, FIRING, PENDING), state)
    fired_at = np.where(promote, now, fired_at)
    # condition false: pending drops back; firing resolves after keep_firing_for
    quiet = ~holds & ~keep
    drop = quiet & (state == PENDING)
    resolve = (quiet & firing & ~(now - last_true < keep_s)) | pulse_done
    new_state = np.where(drop | resolve, INACTIVE, new_state)
    active_since = np.where(drop | resolve, np.nan, active_since)

    table.state[rows] = new_state
    table.active_since[rows] = active_since
    table.last_true[rows] = last_true
    table.fired_at[rows] = fired_at
    out = new_state.astype(np.int8)
    out[resolve] = RESOLVED
    return out


class TickResult:
    """What one evaluation tick found, columnar and cheap to keep.

    Attributes
    ----------
    now : float
        Evaluation time.
    rule : object array of str
        Rule name per alert instance.
    fingerprint : object array of str
        Alert id per instance (rule + labels).
    state : int8 array
        :data:`STATE_NAMES` codes (``RESOLVED`` on the tick it resolved).
    value : float64 array
        The value the condition was judged on (NaN without data).
    """

    __slots__ = ("now", "rule", "fingerprint", "state", "value")

    def __init__(self, now: float, rule: np.ndarray, fingerprint: np.ndarray, state: np.ndarray,
                 value: np.ndarray) -> None:
        self.now = now
        self.rule = rule
        self.fingerprint = fingerprint
        self.state = state
        self.value = value

    def __len__(self) -> int:
        return len(self.state)

    def rows(self) -> list[tuple[str, str, str, float]]:
        """``(rule, fingerprint, state name, value)`` per instance."""
        return [(r, f, STATE_NAMES[s], float(v))
                for r, f, s, v in zip(self.rule, self.fingerprint, self.state, self.value)]

    def of(self, rule: str) -> list[tuple[str, str, float]]:
        """``(fingerprint, state name, value)`` of one rule's instances."""
        return [(f, STATE_NAMES[s], float(v))
                for r, f, s, v in zip(self.rule, self.fingerprint, self.state, self.value) if r == rule]

    def count(self, state: str) -> int:
        """Instances in ``state`` at this tick."""
        return int(np.count_nonzero(self.state == STATE_NAMES.index(state)))

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={self.count(name)}" for name in STATE_NAMES)
        return f"TickResult(now={self.now!r}, {counts})"
