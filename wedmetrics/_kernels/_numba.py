"""Numba batch twins of the streaming detectors in ``wedmetrics.alerting.detectors``.

Private: call them through ``detectors.detect``, which validates the input.
Every kernel repeats the streaming algorithm operation for operation (same
median/MAD walk, same running sums in the same order), so the outputs are
bit-identical to the pure-Python path; ``tests/alerting/test_detectors.py``
checks that with hypothesis.  Constants arrive as arguments: a cached kernel
reads no module globals that could change.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["robust_detect", "ewma_detect", "alert_onsets", "conformal_surprise", "knn_distance",
           "likelihood_nines", "range_normalise", "art_novelty", "context_novelty",
           "range_novelty", "ensemble_detect"]


@njit(cache=True)
def _insert_sorted(srt, k, value):
    # srt[:k] is sorted; insert like bisect.insort (after equal values).
    pos = np.searchsorted(srt[:k], value, side="right")
    for j in range(k, pos, -1):
        srt[j] = srt[j - 1]
    srt[pos] = value


@njit(cache=True)
def _remove_sorted(srt, k, value):
    pos = np.searchsorted(srt[:k], value, side="left")
    for j in range(pos, k - 1):
        srt[j] = srt[j + 1]


@njit(cache=True)
def _robust_z(srt, k, min_periods, value, mad_to_sigma, mean_ad_to_sigma):
    if k < min_periods:
        return 0.0
    mid = k // 2
    if k % 2 == 1:
        med = srt[mid]
    else:
        med = 0.5 * (srt[mid - 1] + srt[mid])
    left = np.searchsorted(srt[:k], med, side="left") - 1
    right = left + 1
    lower = 0.0
    upper = 0.0
    for _ in range(mid + 1):
        if right >= k or (left >= 0 and med - srt[left] <= srt[right] - med):
            dev = med - srt[left]
            left -= 1
        else:
            dev = srt[right] - med
            right += 1
        lower = upper
        upper = dev
    mad = upper if k % 2 == 1 else 0.5 * (lower + upper)
    scale = mad_to_sigma * mad
    if scale <= 0.0:
        total = 0.0
        for j in range(k):
            total += abs(srt[j] - med)
        scale = mean_ad_to_sigma * (total / k)
    if scale <= 0.0:
        return 0.0 if value == med else np.inf
    return abs(value - med) / scale


@njit(cache=True)
def _gate(scores, anomalous, i, score, threshold, span, q_idx, q_val, head, tail, seen):
    """Surprise gate as a max-queue in arrays; returns the new (head, tail)."""
    if span == 0:
        anomalous[i] = score >= threshold
        return head, tail
    while head < tail and q_idx[head] < seen - span:
        head += 1
    fresh = head == tail or score > q_val[head]
    while head < tail and q_val[tail - 1] <= score:
        tail -= 1
    q_idx[tail] = seen
    q_val[tail] = score
    tail += 1
    anomalous[i] = score >= threshold and fresh
    return head, tail


@njit(cache=True)
def _record(score, span, q_idx, q_val, head, tail, seen):
    """One view's surprise record (max-queue); returns (fresh, head, tail)."""
    while head < tail and q_idx[head] < seen - span:
        head += 1
    fresh = head == tail or score > q_val[head]
    while head < tail and q_val[tail - 1] <= score:
        tail -= 1
    q_idx[tail] = seen
    q_val[tail] = score
    tail += 1
    return fresh, head, tail


@njit(cache=True)
def robust_detect(values, window, min_periods, mean_span, season, threshold, surprise_window,
                  per_view, mad_to_sigma, mean_ad_to_sigma):
    """Batch ``RobustZDetector``: (float64 scores, bool anomalous) per row.

    ``per_view`` selects ``gate="view"`` (one surprise record per view, as
    ``detectors._per_view_decision``) over ``gate="score"``.
    """
    n = values.shape[0]
    scores = np.zeros(n)
    anomalous = np.zeros(n, dtype=np.bool_)
    ring = np.empty((3, window))          # level, step, mean views
    srt = np.empty((3, window))
    fill = np.zeros(3, dtype=np.int64)
    head_pos = np.zeros(3, dtype=np.int64)
    recent = np.empty(mean_span)
    recent_len = 0
    recent_head = 0
    q_idx = np.empty(n + 1, dtype=np.int64)
    q_val = np.empty(n + 1)
    head = 0
    tail = 0
    n_views = 3 if mean_span > 1 else 2
    v_idx = np.empty((n_views, n + 1 if per_view else 1), dtype=np.int64)
    v_val = np.empty((n_views, n + 1 if per_view else 1))
    v_head = np.zeros(n_views, dtype=np.int64)
    v_tail = np.zeros(n_views, dtype=np.int64)
    seen = 0
    have_previous = False
    previous = 0.0
    for i in range(n):
        if season > 0:
            if i < season:
                continue
            y = values[i] - values[i - season]
        else:
            y = values[i]
        feats = np.empty(3)
        active = np.zeros(3, dtype=np.bool_)
        feats[0] = y
        active[0] = True
        if have_previous:
            feats[1] = y - previous
            active[1] = True
        previous = y
        have_previous = True
        if recent_len == mean_span:
            recent_head = (recent_head + 1) % mean_span
            recent_len -= 1
        recent[(recent_head + recent_len) % mean_span] = y
        recent_len += 1
        if mean_span > 1:
            total = 0.0                   # oldest first, as the streaming sum
            for j in range(recent_len):
                total += recent[(recent_head + j) % mean_span]
            feats[2] = total / recent_len
            active[2] = True
        score = 0.0
        zs = np.zeros(3)
        for v in range(3):
            if not active[v]:
                continue
            k = fill[v]
            z = _robust_z(srt[v], k, min_periods, feats[v], mad_to_sigma, mean_ad_to_sigma)
            zs[v] = z
            if z > score:
                score = z
            if k == window:
                old = ring[v, head_pos[v]]
                _remove_sorted(srt[v], k, old)
                k -= 1
                ring[v, head_pos[v]] = feats[v]
                head_pos[v] = (head_pos[v] + 1) % window
            else:
                ring[v, k] = feats[v]
            _insert_sorted(srt[v], k, feats[v])
            fill[v] = k + 1
        if per_view:
            fresh_best = -1.0
            for v in range(n_views):
                if surprise_window == 0:
                    fresh = True
                else:
                    fresh, v_head[v], v_tail[v] = _record(zs[v], surprise_window, v_idx[v],
                                                          v_val[v], v_head[v], v_tail[v], seen)
                if fresh and zs[v] > fresh_best:
                    fresh_best = zs[v]
            if fresh_best < 0.0:
                scores[i] = score
            else:
                scores[i] = fresh_best
                anomalous[i] = fresh_best >= threshold
        else:
            scores[i] = score
            head, tail = _gate(scores, anomalous, i, score, threshold, surprise_window,
                               q_idx, q_val, head, tail, seen)
        seen += 1
    return scores, anomalous


@njit(cache=True)
def ewma_detect(values, alpha, min_periods, season, threshold, surprise_window):
    """Batch ``EwmaDetector``: (float64 scores, bool anomalous) per row."""
    n = values.shape[0]
    scores = np.zeros(n)
    anomalous = np.zeros(n, dtype=np.bool_)
    q_idx = np.empty(n + 1, dtype=np.int64)
    q_val = np.empty(n + 1)
    head = 0
    tail = 0
    seen = 0
    mean = 0.0
    var = 0.0
    count = 0
    for i in range(n):
        if season > 0:
            if i < season:
                continue
            y = values[i] - values[i - season]
        else:
            y = values[i]
        score = 0.0
        if count >= min_periods:
            sd = np.sqrt(var)
            if sd > 0.0:
                score = abs(y - mean) / sd
            elif y != mean:
                score = np.inf
        if count == 0:
            mean = y
        else:
            diff = y - mean
            incr = alpha * diff
            mean = mean + incr
            var = (1.0 - alpha) * (var + diff * incr)
        count += 1
        scores[i] = score
        head, tail = _gate(scores, anomalous, i, score, threshold, surprise_window,
                           q_idx, q_val, head, tail, seen)
        seen += 1
    return scores, anomalous


@njit(cache=True)
def alert_onsets(anomalous, consecutive, cooldown):
    """Batch twin of ``detectors.alert_onsets``."""
    n = anomalous.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    run = 0
    last = -1
    fired = False
    for i in range(n):
        run = run + 1 if anomalous[i] else 0
        if run >= consecutive and (not fired or i - last > cooldown):
            out[i] = True
            last = i
            fired = True
    return out


# -- the ensemble (wedmetrics.alerting.scorers, likelihood, ensemble) ---------------

@njit(cache=True)
def conformal_surprise(scores, calibration):
    """Batch ``scorers.ConformalRank``: surprise in [0, 1] of each score."""
    n = scores.shape[0]
    out = np.zeros(n)
    ring = np.empty(calibration)
    srt = np.empty(calibration)
    k = 0
    head = 0
    log_size = np.log(calibration + 1.0)
    for i in range(n):
        s = scores[i]
        if k > 0:
            at_least = k - np.searchsorted(srt[:k], s, side="left")
            out[i] = np.log((k + 1.0) / (1.0 + at_least)) / log_size
        if k == calibration:
            _remove_sorted(srt, k, ring[head])
            k -= 1
            ring[head] = s
            head = (head + 1) % calibration
        else:
            ring[k] = s
        _insert_sorted(srt, k, s)
        k += 1
    return out


@njit(cache=True)
def knn_distance(values, dim, k, history):
    """Batch ``scorers.KnnDistance``: mean distance to the k nearest lag vectors.

    The k smallest distances are kept sorted while they are computed (the
    multiset a full sort would give), then summed smallest first, as the
    streaming class does.
    """
    n = values.shape[0]
    out = np.zeros(n)
    nearest = np.empty(k)
    for i in range(dim - 1, n):
        lo = max(dim - 1, i - dim - history + 1)
        hi = i - dim
        m = hi - lo + 1
        if m < k:
            continue
        filled = 0
        for j in range(lo, hi + 1):
            s = 0.0
            for q in range(dim):
                t = values[i - q] - values[j - q]
                s += t * t
            d = np.sqrt(s)
            if filled == k and d >= nearest[k - 1]:
                continue
            pos = filled if filled < k else k - 1
            while pos > 0 and nearest[pos - 1] > d:
                if pos < k:
                    nearest[pos] = nearest[pos - 1]
                pos -= 1
            nearest[pos] = d
            if filled < k:
                filled += 1
        total = 0.0
        for q in range(k):
            total += nearest[q]
        out[i] = total / k
    return out


@njit(cache=True)
def likelihood_nines(raw, window, averaging, learning, reestimate, mean_floor, variance_floor,
                     max_nines):
    """Batch ``likelihood.AnomalyLikelihood``: nines of each short-term average."""
    n = raw.shape[0]
    out = np.zeros(n)
    ring = np.empty(window)
    recent = np.empty(averaging)
    mean = 0.0
    sd = 1.0
    fitted = False
    for i in range(n):
        recent[i % averaging] = raw[i]
        filled = min(i + 1, averaging)
        start = 0 if i + 1 < averaging else (i % averaging + 1)
        total = 0.0
        for j in range(filled):
            total += recent[(start + j) % filled]
        avg = total / filled
        ring[i % window] = avg
        if i >= learning and (not fitted or (i - learning) % reestimate == 0):
            size = min(i + 1, window)
            total = 0.0
            for j in range(size):
                total += ring[j]
            m = total / size
            ss = 0.0
            for j in range(size):
                ss += (ring[j] - m) * (ring[j] - m)
            var = ss / size
            mean = max(m, mean_floor)
            sd = np.sqrt(max(var, variance_floor))
            fitted = True
        if fitted:
            tail = 0.5 * math.erfc((avg - mean) / sd / np.sqrt(2.0))
            out[i] = max_nines if tail <= 1e-300 else min(max_nines, -np.log10(tail))
    return out


@njit(cache=True)
def range_normalise(values, size):
    """Batch ``scorers.RangeNormaliser``: position in the trailing min..max."""
    n = values.shape[0]
    out = np.empty(n)
    lo_idx = np.empty(n, dtype=np.int64)     # monotone queues as arrays
    hi_idx = np.empty(n, dtype=np.int64)
    lo_head = lo_tail = hi_head = hi_tail = 0
    for i in range(n):
        x = values[i]
        while lo_tail > lo_head and values[lo_idx[lo_tail - 1]] >= x:
            lo_tail -= 1
        lo_idx[lo_tail] = i
        lo_tail += 1
        while hi_tail > hi_head and values[hi_idx[hi_tail - 1]] <= x:
            hi_tail -= 1
        hi_idx[hi_tail] = i
        hi_tail += 1
        if lo_idx[lo_head] <= i - size:
            lo_head += 1
        if hi_idx[hi_head] <= i - size:
            hi_head += 1
        low = values[lo_idx[lo_head]]
        high = values[hi_idx[hi_head]]
        out[i] = 0.5 if high <= low else (x - low) / (high - low)
    return out


@njit(cache=True)
def art_novelty(values, dim, normaliser, vigilance, categories, alpha):
    """Batch ``art.ArtNovelty``: 1 - best fuzzy ART match of each lag vector."""
    n = values.shape[0]
    out = np.zeros(n)
    u_all = range_normalise(values, normaliser)
    w = np.zeros((categories, 2 * dim))
    used = np.zeros(categories, dtype=np.int64)
    n_cat = 0
    u = np.empty(dim)
    for i in range(dim - 1, n):
        for q in range(dim):
            u[q] = u_all[i - dim + 1 + q]
        best_match = 0.0
        chosen = -1
        chosen_choice = -1.0
        for j in range(n_cat):
            overlap = 0.0
            size = 0.0
            for q in range(dim):
                a = w[j, q]
                b = w[j, dim + q]
                overlap += (u[q] if u[q] < a else a) + ((1.0 - u[q]) if 1.0 - u[q] < b else b)
                size += a + b
            match = overlap / dim
            if match > best_match:
                best_match = match
            if match >= vigilance:
                choice = overlap / (alpha + size)
                if choice > chosen_choice:
                    chosen = j
                    chosen_choice = choice
        if chosen < 0:
            if n_cat < categories:
                chosen = n_cat
                n_cat += 1
            else:
                chosen = 0
                for j in range(1, categories):
                    if used[j] < used[chosen]:
                        chosen = j
            for q in range(dim):
                w[chosen, q] = u[q]
                w[chosen, dim + q] = 1.0 - u[q]
        else:
            for q in range(dim):
                if u[q] < w[chosen, q]:
                    w[chosen, q] = u[q]
                if 1.0 - u[q] < w[chosen, dim + q]:
                    w[chosen, dim + q] = 1.0 - u[q]
        used[chosen] = i + 1
        out[i] = 1.0 - best_match
    return out


@njit(cache=True)
def context_novelty(values, normaliser, order, levels, slots, golden):
    """Batch ``contextual.ContextNovelty``: share of unseen context transitions."""
    n = values.shape[0]
    out = np.zeros(n)
    u_all = range_normalise(values, normaliser)
    symbols = np.zeros(n, dtype=np.int64)
    table = np.full(slots, -1, dtype=np.int64)
    for i in range(n):
        symbol = min(levels - 1, int(u_all[i] * levels))
        symbols[i] = symbol
        known = min(i, order)
        unseen = 0
        for k in range(1, known + 1):
            key = k
            for back in range(k, 0, -1):
                key = key * levels + symbols[i - back]
            key = key * levels + symbol
            slot = ((key * golden) & 0xFFFFFFFF) * slots >> 32
            if table[slot] != key:
                unseen += 1
                table[slot] = key
        if known > 0:
            out[i] = unseen / known
    return out


@njit(cache=True)
def range_novelty(values, span, tolerance, learning, blocks):
    """Batch ``spatial.RangeNovelty``: is each value beyond the trailing range
    by more than ``tolerance`` times it?"""
    n = values.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    block = -(-span // blocks)
    n_blocks = -(-span // block)
    lows = np.empty(n_blocks)
    highs = np.empty(n_blocks)
    filled = 0
    head = 0
    low = np.inf
    high = -np.inf
    cur_low = np.inf
    cur_high = -np.inf
    cur_n = 0
    for i in range(n):
        x = values[i]
        lo = low if low < cur_low else cur_low
        hi = high if high > cur_high else cur_high
        if i >= learning and hi > lo:
            margin = tolerance * (hi - lo)
            out[i] = x > hi + margin or x < lo - margin
        if x < cur_low:
            cur_low = x
        if x > cur_high:
            cur_high = x
        cur_n += 1
        if cur_n == block:
            lows[head] = cur_low
            highs[head] = cur_high
            head = (head + 1) % n_blocks
            if filled < n_blocks:
                filled += 1
            low = lows[0]
            high = highs[0]
            for j in range(1, filled):
                if lows[j] < low:
                    low = lows[j]
                if highs[j] > high:
                    high = highs[j]
            cur_low = np.inf
            cur_high = -np.inf
            cur_n = 0
    return out


@njit(cache=True)
def ensemble_detect(values, use, window, min_periods, mean_span, season, season_lag,
                    mad_to_sigma, mean_ad_to_sigma, knn_dim, knn_k, knn_history, calibration,
                    likelihood_window, averaging, learning, reestimate, mean_floor,
                    variance_floor, max_nines, art_params, context_params, novelty,
                    novelty_blocks):
    """Batch ``ensemble.EnsembleDetector``: nines per row (max over the scorers in ``use``:
    robust, knn, seasonal, art, context).

    ``art_params`` = (vigilance, categories, alpha) and ``context_params`` =
    (order, levels, slots, golden) are the modules' constants.  ``novelty`` is
    the range novelty's tolerance (negative: off); a novel value scores
    ``max_nines``.
    """
    n = values.shape[0]
    best = np.zeros(n)
    for which in range(5):
        if not use[which]:
            continue
        if which == 1:
            raw = knn_distance(values, knn_dim, knn_k, knn_history)
        elif which == 3:
            raw = art_novelty(values, knn_dim, calibration, art_params[0], int(art_params[1]),
                              art_params[2])
        elif which == 4:
            raw = context_novelty(values, calibration, context_params[0], context_params[1],
                                  context_params[2], context_params[3])
        else:
            lag = season if which == 0 else season_lag
            raw, _ = robust_detect(values, window, min_periods, mean_span, lag, 1e-12, 0, True,
                                   mad_to_sigma, mean_ad_to_sigma)
        nines = likelihood_nines(conformal_surprise(raw, calibration), likelihood_window,
                                 averaging, learning, reestimate, mean_floor, variance_floor,
                                 max_nines)
        for i in range(n):
            if nines[i] > best[i]:
                best[i] = nines[i]
    if novelty >= 0.0:
        novel = range_novelty(values, likelihood_window, novelty, learning, novelty_blocks)
        for i in range(n):
            if novel[i]:
                best[i] = max_nines
    return best
