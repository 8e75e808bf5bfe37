"""Shared fixtures: deterministic engines on a manual clock."""
from __future__ import annotations

import threading

import pytest

import wedmetrics as wm


@pytest.fixture
def clock():
    return wm.ManualClock(1_700_000_000.0)


@pytest.fixture
def engine(clock):
    eng = wm.MetricsEngine(clock=clock)
    yield eng
    eng.close()


@pytest.fixture(autouse=True)
def no_thread_leaks():
    """Every test must stop the threads it starts."""
    before = set(threading.enumerate())
    yield
    for t in set(threading.enumerate()) - before:
        t.join(timeout=5.0)
    leaked = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"
