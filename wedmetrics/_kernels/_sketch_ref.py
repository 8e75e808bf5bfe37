"""Pure-Python twin of the compiled quantile sketch (``csrc/sketch.c``).

A relative-error log-bucket sketch in the DDSketch family (Masson, Rim and
Lee, "DDSketch", VLDB 2019) with UDDSketch's uniform collapse (Epicoco et
al., "UDDSketch", 2020) when the bins outgrow their bound:

* mapping: ``key(v) = ceil(log(|v|) / log(gamma))`` with
  ``gamma = (1 + alpha) / (1 - alpha)``; every value of a bin lies within
  relative error ``alpha`` of the bin's representative ``2 gamma^k / (1 + gamma)``.
* stores: one for positive values, one for negative magnitudes, and an exact
  zero count (``|v|`` below the smallest normal double counts as zero).
* bound: when the key spans of the two stores together exceed ``max_bins``,
  every key ``k`` becomes ``ceil(k / 2)`` (gamma squares), and the effective
  alpha becomes ``2 alpha / (1 + alpha^2)``; ``collapses`` and ``alpha``
  report it.  Base keys are always computed at level 0 and shifted, so
  keys are identical however a sketch reached its level, and merge is exact.

Every float operation here is done in the same order as in C, so both
implementations agree bit for bit (the hypothesis tests check it).
"""
from __future__ import annotations

import math

from . import _codec

DBL_MIN = 2.2250738585072014e-308


def gamma_for(alpha: float) -> float:
    return (1.0 + alpha) / (1.0 - alpha)


def base_key(magnitude: float, multiplier: float) -> int:
    """Level-0 key of a positive magnitude."""
    return math.ceil(math.log(magnitude) * multiplier)


def shift_key(k: int, collapses: int) -> int:
    """``ceil(k / 2**collapses)`` for any integer ``k``."""
    return -((-k) >> collapses)


def _exp(x: float) -> float:
    """``math.exp`` that saturates to inf like C's ``exp`` instead of raising."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def representative(key: int, log_gamma: float, collapses: int) -> float:
    lg = log_gamma * float(1 << collapses)
    g = _exp(lg)
    if math.isinf(g):   # only absurd decoded collapse levels: the limit of 2 g^k / (1 + g)
        return math.inf if key > 1 else (2.0 if key == 1 else 0.0)
    return 2.0 * _exp(key * lg) / (1.0 + g)


class _Store:
    """Key -> count, with the key span tracked (what the bound limits)."""

    __slots__ = ("bins", "lo", "hi")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.lo = 0
        self.hi = -1

    def span(self) -> int:
        return self.hi - self.lo + 1 if self.bins else 0

    def add(self, k: int, c: int) -> None:
        b = self.bins
        if not b:
            self.lo = self.hi = k
        elif k < self.lo:
            self.lo = k
        elif k > self.hi:
            self.hi = k
        b[k] = b.get(k, 0) + c

    def collapse(self, levels: int) -> None:
        old = self.bins
        self.bins = {}
        for k, c in old.items():
            nk = shift_key(k, levels)
            self.bins[nk] = self.bins.get(nk, 0) + c
        if self.bins:
            self.lo = shift_key(self.lo, levels)
            self.hi = shift_key(self.hi, levels)

    def sorted_items(self) -> tuple[list[int], list[int]]:
        keys = sorted(self.bins)
        return keys, [self.bins[k] for k in keys]


class Sketch:
    """Mergeable relative-error quantile sketch.

    Parameters
    ----------
    alpha : float
        Relative accuracy guaranteed while the bins fit ``max_bins``.
    max_bins : int
        Bound on the key span of the sketch; beyond it the sketch collapses
        uniformly and reports the degraded ``alpha``.

    Examples
    --------
    >>> s = Sketch(0.01)
    >>> for v in range(1, 101):
    ...     _ = s.add(float(v))
    >>> abs(s.quantile(0.5) - 50) <= 0.01 * 50
    True
    """

    __slots__ = ("base_alpha", "max_bins", "collapses", "_mult", "_log_gamma",
                 "_pos", "_neg", "zero_count", "count", "sum", "min", "max")

    def __init__(self, alpha: float = 0.01, max_bins: int = 2048) -> None:
        alpha = float(alpha)
        if not (0.0 < alpha < 1.0):
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if alpha < _codec.MIN_ALPHA:
            raise ValueError(f"alpha must be >= {_codec.MIN_ALPHA}, got {alpha!r}")
        max_bins = int(max_bins)
        if not (16 <= max_bins <= _codec.MAX_BINS_LIMIT):
            raise ValueError(f"max_bins must be in [16, {_codec.MAX_BINS_LIMIT}], got {max_bins}")
        self.base_alpha = alpha
        self.max_bins = max_bins
        self.collapses = 0
        self._log_gamma = math.log(gamma_for(alpha))
        self._mult = 1.0 / self._log_gamma
        self._pos = _Store()
        self._neg = _Store()
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # -- building -----------------------------------------------------
    def add(self, value: float) -> "Sketch":
        """Add one finite value; returns ``self`` so calls chain."""
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"sketch values must be finite, got {v!r}")
        self._add(v)
        return self

    def _add(self, v: float) -> None:
        self.count += 1
        self.sum += v
        if v < self.min:
            self.min = v
        if v > self.max:
            self.max = v
        if v > 0.0:
            if v < DBL_MIN:
                self.zero_count += 1
            else:
                self._pos.add(shift_key(base_key(v, self._mult), self.collapses), 1)
                self._bound()
        elif v < 0.0:
            if -v < DBL_MIN:
                self.zero_count += 1
            else:
                self._neg.add(shift_key(base_key(-v, self._mult), self.collapses), 1)
                self._bound()
        else:
            self.zero_count += 1

    def add_many(self, values) -> "Sketch":
        """Add every value of a sequence or array (all must be finite)."""
        vals = [float(v) for v in values]
        for v in vals:
            if not math.isfinite(v):
                raise ValueError(f"sketch values must be finite, got {v!r}")
        for v in vals:
            self._add(v)
        return self

    def _bound(self) -> None:
        while self._pos.span() + self._neg.span() > self.max_bins:
            self._collapse_to(self.collapses + 1)

    def _collapse_to(self, level: int) -> None:
        d = level - self.collapses
        if d > 0:
            self._pos.collapse(d)
            self._neg.collapse(d)
            self.collapses = level

    def merge(self, other: "Sketch") -> "Sketch":
        """Add ``other``'s content to this sketch (exact); returns ``self``."""
        if not isinstance(other, Sketch):
            raise TypeError(f"can only merge a Sketch, got {type(other).__name__}")
        if other.base_alpha != self.base_alpha:
            raise ValueError(
                f"cannot merge sketches of different alpha ({self.base_alpha} vs {other.base_alpha})")
        if other.count == 0:
            return self
        if other.collapses > self.collapses:
            self._collapse_to(other.collapses)
        d = self.collapses - other.collapses
        for k, c in other._pos.bins.items():
            self._pos.add(shift_key(k, d), c)
        for k, c in other._neg.bins.items():
            self._neg.add(shift_key(k, d), c)
        self.zero_count += other.zero_count
        self.count += other.count
        self.sum += other.sum
        if other.min < self.min:
            self.min = other.min
        if other.max > self.max:
            self.max = other.max
        self._bound()
        return self

    __iadd__ = merge

    def copy(self) -> "Sketch":
        return Sketch.from_bytes(self.to_bytes())

    # -- reading ------------------------------------------------------
    @property
    def alpha(self) -> float:
        """Relative accuracy currently guaranteed (degrades with collapses)."""
        if self.collapses == 0:
            return self.base_alpha
        g = _exp(self._log_gamma * float(1 << self.collapses))
        if math.isinf(g):
            return 1.0
        return (g - 1.0) / (g + 1.0)

    @property
    def num_bins(self) -> int:
        return len(self._pos.bins) + len(self._neg.bins)

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """Estimate of the ``q`` quantile: the value of rank ``floor(q (n-1))``
        (numpy's ``method="lower"``) within relative error ``alpha``; NaN when empty."""
        q = float(q)
        if not (0.0 <= q <= 1.0):
            raise ValueError(f"quantile must be in [0, 1], got {q!r}")
        if self.count == 0:
            return math.nan
        if q == 0.0:
            return self.min
        if q == 1.0:
            return self.max
        rank = q * (self.count - 1)
        seen = 0
        for k in sorted(self._neg.bins, reverse=True):
            seen += self._neg.bins[k]
            if seen > rank:
                return self._clamp(-representative(k, self._log_gamma, self.collapses))
        seen += self.zero_count
        if seen > rank:
            return self._clamp(0.0)
        for k in sorted(self._pos.bins):
            seen += self._pos.bins[k]
            if seen > rank:
                return self._clamp(representative(k, self._log_gamma, self.collapses))
        return self.max

    def _clamp(self, v: float) -> float:
        return self.min if v < self.min else self.max if v > self.max else v

    def quantiles(self, qs) -> list[float]:
        return [self.quantile(q) for q in qs]

    def bins(self) -> tuple[list[int], list[int], list[int], list[int]]:
        """``(neg_keys, neg_counts, pos_keys, pos_counts)``, keys ascending."""
        return (*self._neg.sorted_items(), *self._pos.sorted_items())

    # -- bytes ----------------------------------------------------------
    def body_bytes(self) -> bytes:
        return _codec.encode_body(self.zero_count, self._neg.sorted_items(),
                                  self._pos.sorted_items())

    def to_bytes(self) -> bytes:
        """Serialize (see :mod:`wedmetrics._kernels._codec` for the format)."""
        head = _codec.encode_header(self.base_alpha, self.max_bins, self.collapses,
                                    self.count, self.sum, self.min, self.max)
        return head + self.body_bytes()

    @classmethod
    def from_bytes(cls, data) -> "Sketch":
        """Decode bytes from :meth:`to_bytes`; raises ``ValueError`` on bad input."""
        buf = bytes(data) if not isinstance(data, bytes) else data
        alpha, max_bins, collapses, count, total, lo, hi = _codec.decode_header(buf)
        s = cls(alpha, max_bins)
        s._load_body(buf, _codec.HEADER_SIZE, collapses, count, strict_end=True)
        s.count, s.sum = count, total
        s.min, s.max = (lo, hi) if count else (math.inf, -math.inf)
        return s

    def _load_body(self, buf: bytes, start: int, collapses: int, count: int,
                   strict_end: bool) -> int:
        zero, nk, nc, pk, pc, end = _codec.decode_body(buf, start, self.max_bins)
        if strict_end and end != len(buf):
            raise ValueError(f"{len(buf) - end} trailing bytes after the sketch")
        if zero + sum(nc) + sum(pc) != count:
            raise ValueError("sketch bin counts do not add up to its count")
        for keys in (nk, pk):
            if keys and keys[-1] - keys[0] + 1 > self.max_bins:
                raise ValueError("sketch bins span more than max_bins")
        if (nk and pk) and (nk[-1] - nk[0] + 1) + (pk[-1] - pk[0] + 1) > self.max_bins:
            raise ValueError("sketch bins span more than max_bins")
        self.collapses = collapses
        self.zero_count = zero
        for k, c in zip(nk, nc):
            self._neg.add(k, c)
        for k, c in zip(pk, pc):
            self._pos.add(k, c)
        return end

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sketch):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # mutable

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (f"Sketch(alpha={self.base_alpha}, count={self.count}, bins={self.num_bins}, "
                f"collapses={self.collapses})")
