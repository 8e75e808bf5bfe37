"""The HTTP hub (extra ``[http]``): dashboard API, tenants, cache and rate limits.

>>> from wedmetrics.http import create_app          # doctest: +SKIP
>>> app = create_app(engine, alerts=alerts, tokens={"tok-bliss-0001": "bliss-events"})

See ``docs/http.md``.  Importing this package imports FastAPI; ``import
wedmetrics`` does not.
"""
from __future__ import annotations

from .app import ROUTERS, create_app
from .hub import Hub

__all__ = ["create_app", "Hub", "ROUTERS"]
