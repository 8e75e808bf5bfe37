"""Detection quality and speed of the anomaly detectors on the NAB development subset.

Reads ``../shared/data/nab-dev`` relative to the repository root (override
with ``WEDMETRICS_NAB_ROOT``); skips cleanly when it is absent.

Run from anywhere::

    python benchmarks/bench_detection.py            # the tables (in-sample and cross-validated)
    python benchmarks/bench_detection.py --speed    # and the throughput figures
    python benchmarks/bench_detection.py --quick    # without the 96-configuration robust family
    python -m pytest benchmarks/bench_detection.py --benchmark-only -s

Every series runs through :func:`wedmetrics.alerting.detectors.detect` (Numba
batch kernels) with no per-file setting and nothing read from the labels; the
decisions become notifications with :func:`alert_onsets` (one row per firing,
then ``cooldown`` quiet rows), exactly as an alert rule's pulses.

**Candidates and the selection.**  :data:`FAMILIES` are the candidate raw
scorer sets.  Each runs through the anomaly likelihood at the paper's own
settings (:data:`PAPER`: short-term average 10, 5 nines) with NAB's range
check (:data:`NOVELTY`), so a family is one configuration: nothing is fitted
to the files but the choice of family.  The default's selection rule
(:func:`choose_default`) takes the family with the best NAB standard score,
and among those within :data:`NOISE` points the one with the fewest scorers
(then the best).  The estimate for unseen series is that rule nested in
leave-one-category-out (:func:`nested_cross_validate`): for each of NAB's 7
categories the rule runs on the other 6 and its pick is scored on the held-out
one.  :func:`procedure_rows` re-runs the previous round's procedure (a grid of
averaging and threshold per family, families ordered by simplicity) and the
variants tried this round, each nested the same way.  NAB's published
detectors, thresholded at NAB's own corpus thresholds
(``reference_detectors/thresholds.json``, tuned on all of NAB), are the peers.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:           # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from wedmetrics.alerting import detectors, nab, scoring, spatial  # noqa: E402
from wedmetrics.alerting.backtest import infer_step  # noqa: E402

# ../shared/data/nab-dev of the repository (or of the checkout a worktree hangs under)
NAB_ROOT = Path(os.environ.get("WEDMETRICS_NAB_ROOT") or next(
    (p for p in (REPO.parent / "shared" / "data" / "nab-dev",
                 REPO.parent.parent / "shared" / "data" / "nab-dev") if p.exists()),
    REPO.parent / "shared" / "data" / "nab-dev"))
PEERS = ("ARTime", "numenta", "contextOSE", "knncad", "randomCutForest", "twitterADVec",
         "windowedGaussian")
#: The ensemble families: raw scorers, each through conformal rank and likelihood.
FAMILIES = {"likelihood(robust z)": ("robust",), "likelihood(knn)": ("knn",),
            "likelihood(seasonal)": ("seasonal",), "likelihood(art)": ("art",),
            "likelihood(context)": ("context",),
            "ensemble robust+knn": ("robust", "knn"),
            "ensemble robust+art": ("robust", "art"),
            "ensemble robust+context": ("robust", "context"),
            "ensemble robust+knn+seasonal": ("robust", "knn", "seasonal"),
            "ensemble robust+art+context": ("robust", "art", "context")}
#: The anomaly likelihood at the paper's settings (Ahmad et al. 2017: W' = 10,
#: alert at 1 - 1e-5): this round's candidates use nothing else.
PAPER = {"averaging": 10, "threshold": 5.0}
#: NAB's spatial tolerance for the range check (HTM's and ARTime's).
NOVELTY = spatial.TOLERANCE
#: The previous round's grid per family: short-term average 1 or 10, 5 or 4 nines.
ENSEMBLE_GRID = {"averaging": (1, 10), "threshold": (5.0, 4.0)}
#: NAB standard points within which two candidates count as equal (about two of
#: the 53 windows found at their start instead of missed: 100 * 2 / 106 each).
NOISE = 2.0
#: The previous default's family (robust z-score with the surprise gate) and its grid.
ROBUST_GRID = {"window": (300, 600), "threshold": (4.0, 5.0, 6.0, 8.0),
               "surprise_window": (1000, 2000, 4000), "gate": ("view", "score"),
               "cooldown": (100, 300)}
ROBUST_BASE = detectors.DetectorConfig(method="robust", window=300, min_periods=30,
                                       threshold=6.0, surprise_window=2000, gate="view",
                                       mean_span=6, cooldown=100)
#: The previous round's default (anomaly likelihood of ranked robust z-scores).
PREVIOUS_DEFAULT = replace(detectors.default_detector_config(), scorers=("robust",),
                           averaging=1, threshold=5.0, novelty_tolerance=None)


@dataclass(frozen=True)
class Row:
    """One line of the figures table."""

    name: str
    standard: float
    low_fp: float
    low_fn: float
    events: scoring.EventScore


def score_detections(name: str, per_file: list[tuple[np.ndarray, nab.NabSeries]]) -> Row:
    """Score one detector's per-file detections with every measure."""
    pairs = [(det, series.windows) for det, series in per_file]
    events = scoring.combine_event_scores(
        scoring.score_events(det, series.windows, series.timestamps) for det, series in per_file)
    return Row(name=name,
               standard=scoring.nab_score(pairs, "standard").normalized,
               low_fp=scoring.nab_score(pairs, "reward_low_FP_rate").normalized,
               low_fn=scoring.nab_score(pairs, "reward_low_FN_rate").normalized,
               events=events)


def category(series: nab.NabSeries) -> str:
    """NAB category of a series (``realTweets`` etc.)."""
    return series.name.split("/")[0]


def day_lag(series: nab.NabSeries) -> int:
    """A day in observations at the series' step (what ``default_anomaly_rules`` uses)."""
    return max(1, int(round(86400.0 / infer_step(series.timestamps))))


def run_config(corpus: list[nab.NabSeries], config: detectors.DetectorConfig,
               cache: dict | None = None) -> list[np.ndarray]:
    """Notification onsets of one configuration on every series.

    An ensemble's score is the maximum of its scorers' nines, raised to the
    maximum by the range check, so ``cache`` keeps each scorer's nines per
    averaging and each series' range-check flags: a family costs no new run.
    """
    out = []
    for series in corpus:
        cfg = replace(config, season_lag=day_lag(series))
        if cfg.method == "ensemble" and cache is not None:
            parts = []
            for name in cfg.scorers:
                key = (series.name, name, cfg.averaging)
                if key not in cache:
                    cache[key] = detectors.detect(
                        series.values, replace(cfg, scorers=(name,),
                                               novelty_tolerance=None)).scores
                parts.append(cache[key])
            anomalous = np.max(parts, axis=0) >= cfg.threshold
            if cfg.novelty_tolerance is not None:
                key = (series.name, "novelty", cfg.novelty_tolerance, cfg.likelihood_window,
                       cfg.learning)
                if key not in cache:
                    cache[key] = spatial.novel_rows(series.values, cfg.likelihood_window,
                                                    cfg.novelty_tolerance, cfg.learning)
                anomalous = anomalous | cache[key]
        elif cache is not None:
            key = (series.name, replace(cfg, cooldown=0))
            if key not in cache:
                cache[key] = detectors.detect(series.values, cfg).anomalous
            anomalous = cache[key]
        else:
            anomalous = detectors.detect(series.values, cfg).anomalous
        out.append(detectors.alert_onsets(anomalous, cfg.consecutive, cfg.cooldown))
    return out


@dataclass
class Family:
    """A candidate of the selection: its configurations (simplest first) and
    their notification onsets on every series."""

    name: str
    scorers: tuple
    configs: list
    onsets: list


def make_family(corpus, name: str, cache: dict, *, grid: dict | None = None,
                novelty: float | None = NOVELTY) -> Family:
    """A family at the paper's settings (``grid=None``) or over a grid."""
    scorers = FAMILIES[name]
    base = replace(detectors.default_detector_config(), scorers=scorers,
                   novelty_tolerance=novelty, **PAPER)
    if grid is None:
        configs = [base]
    else:
        keys = list(grid)
        configs = [replace(base, **dict(zip(keys, combo)))
                   for combo in itertools.product(*(grid[k] for k in keys))]
    return Family(name, scorers, configs, [run_config(corpus, c, cache) for c in configs])


def robust_family(corpus, cache: dict) -> Family:
    """The previous default's family: robust z-score with the surprise gate, 96 configurations."""
    keys = list(ROBUST_GRID)
    configs = [replace(ROBUST_BASE, **dict(zip(keys, combo)))
               for combo in itertools.product(*(ROBUST_GRID[k] for k in keys))]
    return Family("robust z + surprise gate (previous default)", ("robust",), configs,
                  [run_config(corpus, c, cache) for c in configs])


def nab_standard(corpus, onsets, among) -> float:
    """NAB standard score of per-series onsets over the series ``among``."""
    return scoring.nab_score([(onsets[i], corpus[i].windows) for i in among]).normalized


def select(corpus, family: Family, train: list[int]) -> int:
    """Index of the simplest configuration within :data:`NOISE` of the best NAB
    standard score on ``train`` (configurations are listed simplest first)."""
    scores = [nab_standard(corpus, det, train) for det in family.onsets]
    best = max(scores)
    return next(i for i, s in enumerate(scores) if s >= best - NOISE)


def cross_validate(corpus, family: Family, among: list[int] | None = None):
    """Leave-one-category-out within ``among`` (default: every series): the
    held-out onsets of each series of ``among`` (in its order) and each fold's pick."""
    among = list(range(len(corpus))) if among is None else among
    held: dict[int, np.ndarray] = {}
    picks = []
    for cat in sorted({category(corpus[i]) for i in among}):
        train = [i for i in among if category(corpus[i]) != cat]
        best = select(corpus, family, train)
        picks.append((cat, family.configs[best]))
        for i in among:
            if category(corpus[i]) == cat:
                held[i] = family.onsets[best][i]
    return [held[i] for i in among], picks


def choose_default(corpus, pool: list[Family], among: list[int], tie: str = "scorers"):
    """The default's selection rule on the series ``among``: each family's
    leave-one-category-out NAB standard score (with one configuration, its
    score on ``among``); among the families within :data:`NOISE` of the best,
    ``tie="scorers"`` takes the fewest scorers, then the best score (this
    round), ``tie="order"`` the first listed (the previous round).  Then the
    family's in-sample pick.  Returns (family index, configuration index,
    the families' cross-validated scores)."""
    loco = []
    for family in pool:
        held, _ = cross_validate(corpus, family, among)
        loco.append(scoring.nab_score([(det, corpus[i].windows)
                                       for det, i in zip(held, among)]).normalized)
    best = max(loco)
    near = [k for k, s in enumerate(loco) if s >= best - NOISE]
    if tie == "order":
        fam = near[0]
    else:
        fewest = min(len(pool[k].scorers) for k in near)
        fam = max((k for k in near if len(pool[k].scorers) == fewest), key=lambda k: loco[k])
    return fam, select(corpus, pool[fam], among), loco


def nested_cross_validate(corpus, pool: list[Family], tie: str = "scorers",
                          after: list[Family] | None = None):
    """The whole selection rule, itself left one category out: for each
    category the rule runs on the other six and its pick is run on the
    held-out one.  With ``after`` (the same families and grids, with the range
    check), the rule chooses in ``pool`` and the pick's twin in ``after`` runs."""
    held: dict[int, np.ndarray] = {}
    picks = []
    everyone = range(len(corpus))
    for cat in sorted({category(s) for s in corpus}):
        train = [i for i in everyone if category(corpus[i]) != cat]
        fam, cfg, _ = choose_default(corpus, pool, train, tie)
        chosen = (after or pool)[fam]
        picks.append((cat, chosen.configs[cfg]))
        for i in everyone:
            if category(corpus[i]) == cat:
                held[i] = chosen.onsets[cfg][i]
    return [held[i] for i in everyone], picks


def describe(cfg: detectors.DetectorConfig) -> str:
    """A configuration in a few words."""
    if cfg.method == "ensemble":
        novelty = "" if cfg.novelty_tolerance is None else \
            f", range check {cfg.novelty_tolerance:g}"
        return (f"{'+'.join(cfg.scorers)}, averaging {cfg.averaging}, {cfg.threshold:g} nines"
                f"{novelty}")
    return (f"window {cfg.window}, threshold {cfg.threshold:g}, surprise {cfg.surprise_window}, "
            f"gate {cfg.gate}, cooldown {cfg.cooldown}")


def run_peer(corpus: list[nab.NabSeries], detector: str, threshold: float) -> list[np.ndarray]:
    """NAB's published outputs of a detector, thresholded (alerts held while above)."""
    return [scoring.threshold_detections(nab.read_detector_scores(NAB_ROOT, detector, s.name),
                                         threshold) for s in corpus]


def peer_thresholds() -> dict[str, float]:
    """NAB's standard-profile threshold of each published detector."""
    body = json.loads((NAB_ROOT / "reference_detectors" / "thresholds.json").read_text())
    return {name: float(body[name]["standard"]["threshold"]) for name in PEERS}


def picks_note(picks) -> str:
    """The folds' picks, grouped."""
    groups: dict[str, list[str]] = {}
    for cat, cfg in picks:
        groups.setdefault(describe(cfg), []).append(cat)
    return "; ".join(f"{d} ({len(c)} folds{'' if len(c) == 7 else ': ' + ', '.join(c)})"
                     for d, c in groups.items())


def figures(corpus: list[nab.NabSeries], log=print,
            previous: bool = True) -> tuple[list[Row], list[Row], list[str]]:
    """The detector table, the procedure table and the notes on the selection
    (``previous``: with the previous default's 96-configuration family, minutes)."""
    cache: dict = {}
    everyone = list(range(len(corpus)))
    notes: list[str] = []
    t0 = time.perf_counter()
    pool = [make_family(corpus, name, cache) for name in FAMILIES]
    bare = [make_family(corpus, name, cache, novelty=None) for name in FAMILIES]
    grid = [make_family(corpus, name, cache, grid=ENSEMBLE_GRID, novelty=None)
            for name in FAMILIES]
    grid_nov = [make_family(corpus, name, cache, grid=ENSEMBLE_GRID) for name in FAMILIES]
    log(f"40 family runs in {time.perf_counter() - t0:.0f} s")

    default = detectors.default_detector_config()
    fam, cfg, loco = choose_default(corpus, pool, everyone)
    picked = pool[fam].configs[cfg]
    notes.append("families (paper's settings, range check) on all 26 files, NAB standard: "
                 + ", ".join(f"{f.name} {s:.2f}" for f, s in zip(pool, loco)))
    notes.append(f"the selection rule picks {describe(picked)}; the frozen default is "
                 f"{describe(default)}")
    if replace(picked, season_lag=default.season_lag) != default:
        notes.append("WARNING: the rule's pick is not the frozen default")
    held, picks = nested_cross_validate(corpus, pool)
    notes.append(f"nested leave-one-category-out picks: {picks_note(picks)}")

    # the default through detect() itself, not through the cache
    direct = run_config(corpus, default)
    if any(not np.array_equal(a, b) for a, b in zip(direct, run_config(corpus, default, cache))):
        notes.append("WARNING: the cached composition differs from detect()")
    rows = [score_detections(f"**the default** ({describe(default)}), in-sample",
                             list(zip(direct, corpus))),
            score_detections("**selection of the default, nested leave-one-category-out** "
                             "(estimate for unseen series)", list(zip(held, corpus)))]
    for with_novelty, without in zip(pool, bare):
        rows.append(score_detections(f"{with_novelty.name} + range check (in-sample = "
                                     "leave-one-category-out)",
                                     list(zip(with_novelty.onsets[0], corpus))))
    for family in bare:
        rows.append(score_detections(f"{family.name}, no range check (in-sample = "
                                     "leave-one-category-out)",
                                     list(zip(family.onsets[0], corpus))))
    prev = run_config(corpus, PREVIOUS_DEFAULT, cache)
    rows.append(score_detections(f"previous round's default ({describe(PREVIOUS_DEFAULT)}), "
                                 "in-sample", list(zip(prev, corpus))))
    prev_nov = run_config(corpus, replace(PREVIOUS_DEFAULT, novelty_tolerance=NOVELTY), cache)
    rows.append(score_detections("previous round's default + range check, in-sample",
                                 list(zip(prev_nov, corpus))))
    if previous:
        t0 = time.perf_counter()
        family = robust_family(corpus, cache)
        best = select(corpus, family, everyone)
        held_r, _ = cross_validate(corpus, family)
        rows.append(score_detections(f"{family.name}, in-sample best "
                                     f"({describe(family.configs[best])})",
                                     list(zip(family.onsets[best], corpus))))
        rows.append(score_detections(f"{family.name}, leave-one-category-out",
                                     list(zip(held_r, corpus))))
        log(f"{family.name}: {len(family.configs)} configurations, "
            f"{time.perf_counter() - t0:.0f} s")
    for name, threshold in peer_thresholds().items():
        rows.append(score_detections(f"{name} (NAB output, threshold {threshold:.4g})",
                                     list(zip(run_peer(corpus, name, threshold), corpus))))
    procedures = procedure_rows(corpus, pool, bare, grid, grid_nov, notes)
    return rows, procedures, notes


def procedure_rows(corpus, pool, bare, grid, grid_nov, notes: list[str]) -> list[Row]:
    """Every selection procedure tried, each nested in leave-one-category-out."""
    variants = [
        ("this round: paper's settings, range check in every candidate, fewest scorers "
         "within noise (the adopted rule)", pool, "scorers", None),
        ("the same, ties broken by list order", pool, "order", None),
        ("paper's settings, no range check, fewest scorers", bare, "scorers", None),
        ("paper's settings, no range check; the range check added to the pick",
         bare, "scorers", pool),
        ("previous round: grid (averaging 1/10, 4/5 nines), no range check, list order",
         grid, "order", None),
        ("previous round's rule; the range check added to the pick", grid, "order", grid_nov),
        ("grid, range check in every candidate, list order", grid_nov, "order", None),
        ("grid, range check in every candidate, fewest scorers", grid_nov, "scorers", None),
    ]
    rows = []
    for label, candidates, tie, after in variants:
        held, picks = nested_cross_validate(corpus, candidates, tie, after)
        rows.append(score_detections(label, list(zip(held, corpus))))
        notes.append(f"{label}: {picks_note(picks)}")
    return rows


def markdown(rows: list[Row]) -> str:
    """The figures table, goals in the header."""
    lines = ["| detector | NAB standard (goal >= 70) | low FP | low FN "
             "| windows detected (goal >= 85 %) | notifications true (goal >= 50 %) "
             "| true / false | false alarms per day | median delay |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r.events
        lines.append(
            f"| {r.name} | {r.standard:.2f} | {r.low_fp:.2f} | {r.low_fn:.2f} "
            f"| {e.windows_detected} / {e.windows} ({100 * e.window_recall:.0f} %) "
            f"| {100 * e.event_precision:.0f} % | {e.true_events} / {e.false_events} "
            f"| {e.false_alarms_per_day:.3f} | {e.median_delay / 3600:.2f} h |")
    return "\n".join(lines)


def throughput(series: nab.NabSeries, config: detectors.DetectorConfig) -> tuple[float, float]:
    """Points per second per series: online (one ``update`` per point, pure
    Python, as the AlertEngine runs it) and batch (``detect``, Numba)."""
    cfg = replace(config, season_lag=day_lag(series))
    values = series.values.tolist()
    det = detectors.make_detector(cfg)
    start = time.perf_counter()
    for v in values:
        det.update(v)
    online = len(values) / (time.perf_counter() - start)
    detectors.detect(series.values[:64], cfg)          # compile (or load) first
    start = time.perf_counter()
    detectors.detect(series.values, cfg)
    batch = len(values) / (time.perf_counter() - start)
    return online, batch


def speed_lines(corpus: list[nab.NabSeries]) -> list[str]:
    """Throughput of the default against the previous defaults."""
    series = next(s for s in corpus if s.name.endswith("ec2_cpu_utilization_5f5533.csv"))
    out = [f"throughput on {series.name} ({len(series)} rows), points per second per series:"]
    for label, cfg in (("default (knn likelihood + range check)",
                        detectors.default_detector_config()),
                       ("previous round's default (robust likelihood)", PREVIOUS_DEFAULT),
                       ("robust z-score (the default before it)", ROBUST_BASE)):
        online, batch = throughput(series, cfg)
        out.append(f"  {label}: online {online:,.0f}/s, batch {batch:,.0f}/s")
    return out


def _corpus_or_skip():
    import pytest
    if not (NAB_ROOT / "labels" / "combined_windows.json").exists():
        pytest.skip(f"NAB development data not found at {NAB_ROOT}")
    return list(nab.iter_corpus(NAB_ROOT))


def test_default_detection_quality(benchmark):
    corpus = _corpus_or_skip()
    default = detectors.default_detector_config()
    detectors.detect(corpus[0].values[:64], default)
    onsets = benchmark.pedantic(run_config, args=(corpus, default), rounds=1, iterations=1)
    rows = [score_detections("default", list(zip(onsets, corpus)))]
    rows += [score_detections(name, list(zip(run_peer(corpus, name, thr), corpus)))
             for name, thr in peer_thresholds().items() if name in ("numenta", "windowedGaussian")]
    print("\n" + markdown(rows))
    # The scorer must agree with NAB's published figures for its own detectors.
    assert round(rows[1].standard, 2) == 71.49 and round(rows[2].standard, 2) == 39.06
    # The rule-shaped output is one row per notification, never a held alert.
    assert all(not (det[1:] & det[:-1]).any() for det in onsets)


def test_default_online_and_batch_speed(benchmark):
    """Batch (Numba) against online (pure streaming) on one series: a ratio."""
    import pytest
    if not detectors.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    corpus = _corpus_or_skip()
    lines = benchmark.pedantic(speed_lines, args=(corpus,), rounds=1, iterations=1)
    print("\n" + "\n".join(lines))


USAGE = """usage: python benchmarks/bench_detection.py [--speed] [--quick]

  (no option)  the tables: every family with and without the range check, the
               default's selection nested-cross-validated, the procedures tried,
               NAB's peers
  --speed      and the throughput of the default against the previous defaults
  --quick      without the 96-configuration robust family (seconds, not minutes)
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv) or set(argv) - {"--speed", "--quick"}:
        print(USAGE)
        return 0 if {"-h", "--help"} & set(argv) else 2
    if not (NAB_ROOT / "labels" / "combined_windows.json").exists():
        print(f"NAB development data not found at {NAB_ROOT}; nothing to do")
        return 0
    corpus = list(nab.iter_corpus(NAB_ROOT))
    print(f"default configuration: {detectors.default_detector_config().to_dict()}")
    print(f"numba kernels: {detectors.HAVE_NUMBA}; {len(corpus)} files\n")
    rows, procedures, notes = figures(corpus, log=lambda m: print(m, flush=True),
                                      previous="--quick" not in argv)
    print("\n".join(notes) + "\n")
    print(markdown(rows))
    print("\nselection procedures, each nested leave-one-category-out:\n")
    print(markdown(procedures))
    if "--speed" in argv:
        print("\n" + "\n".join(speed_lines(corpus)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
