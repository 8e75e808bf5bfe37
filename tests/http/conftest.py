"""Fixtures of the hub tests (helpers live in ``hubserver.py``)."""
from __future__ import annotations

import uuid

import httpx
import pytest

from hubserver import REDIS_URL, World, require_redis


@pytest.fixture
def redis_prefix():
    """A key prefix of this test alone; its keys are deleted afterwards."""
    require_redis()
    import redis

    prefix = f"wmtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def world():
    w = World()
    yield w
    w.close()


@pytest.fixture
def client(base):
    """An HTTP client on the module's ``base`` server (each module says what it serves)."""
    with httpx.Client(base_url=base, timeout=10.0) as c:
        yield c
