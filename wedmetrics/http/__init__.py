"""The HTTP hub (extra ``[http]``): dashboard API, tenants, cache and rate limits.

>>> from wedmetrics.http import create_app          # doctest: +SKIP
>>> app = create_app(engine, alerts=alerts, tokens={"tok-bliss-0001": "bliss-events"})

Only ``/metrics`` for a service that wants nothing else, without FastAPI:

>>> from wedmetrics.http import metrics_app, metrics_wsgi_app   # doctest: +SKIP
>>> asgi_app = metrics_app(engine)                  # or metrics_wsgi_app(engine)

See ``docs/http.md``.  ``create_app`` imports FastAPI (on first use);
``metrics_app`` / ``metrics_wsgi_app`` and ``import wedmetrics`` do not.
"""
from __future__ import annotations

from importlib import import_module

from .exposition import Exposition, metrics_app, metrics_wsgi_app

__all__ = ["create_app", "Hub", "ROUTERS", "Exposition", "metrics_app", "metrics_wsgi_app"]

# the FastAPI app loads on first use, so that the exposition apps stay light
_LAZY = {"create_app": ".app", "ROUTERS": ".app", "Hub": ".hub"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wedmetrics.http' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
