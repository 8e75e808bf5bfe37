"""Fixtures of the Alertmanager tests (helpers live in ``am_peers.py``)."""
from __future__ import annotations

import pytest

from am_peers import Hook


@pytest.fixture
def hook():
    """A webhook receiver on a free 127.0.0.1 port, recording what it is sent."""
    h = Hook()
    yield h
    h.close()
