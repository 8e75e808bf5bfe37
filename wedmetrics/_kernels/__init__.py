"""Private kernels: the compiled core or its pure-Python twin, chosen once.

``WEDMETRICS_PUREPYTHON=1`` forces the reference implementation.  A missing
or broken extension falls back to it with a warning, unless
``WEDMETRICS_REQUIRE_EXT=1``, which turns that into an ImportError.
"""
from __future__ import annotations

import importlib.util
import os
import warnings

from . import _core_ref, _sketch_ref

_force_pure = os.environ.get("WEDMETRICS_PUREPYTHON", "") not in ("", "0")
_require = os.environ.get("WEDMETRICS_REQUIRE_EXT", "") not in ("", "0")

HAVE_COMPILED = False
if not _force_pure:
    try:
        if importlib.util.find_spec(__name__ + "._core") is None:
            raise ImportError("the extension wedmetrics._kernels._core was not built")
        from . import _core as _compiled  # type: ignore[attr-defined]
    except ImportError as exc:
        if _require:
            raise ImportError(
                "WEDMETRICS_REQUIRE_EXT is set but the compiled core did not import: "
                f"{exc}") from exc
        warnings.warn(f"wedmetrics: compiled core unavailable ({exc}); using the pure-Python "
                      "reference, which is much slower", RuntimeWarning, stacklevel=2)
    else:
        HAVE_COMPILED = True

from ..wal import _format as _wal_format  # noqa: E402

if HAVE_COMPILED:
    wal_scan = _compiled.wal_scan
    Sketch = _compiled.Sketch
    Core = _compiled.Core
    Handle = _compiled.Handle
    LabelIndex = _compiled.LabelIndex
else:
    wal_scan = _wal_format.scan
    Sketch = _sketch_ref.Sketch
    Core = _core_ref.Core
    Handle = _core_ref.Handle
    LabelIndex = _core_ref.LabelIndex

from ._core_ref import (BAD_TS, BAD_VALUE, CLOSED, IDX_LIMIT, LATE,  # noqa: E402
                        NEGATIVE_INCREMENT, OK, REASONS, UNKNOWN_SERIES)

__all__ = ["HAVE_COMPILED", "wal_scan", "Sketch", "Core", "Handle", "LabelIndex", "OK", "LATE",
           "BAD_VALUE", "BAD_TS", "UNKNOWN_SERIES", "NEGATIVE_INCREMENT", "CLOSED", "IDX_LIMIT", "REASONS"]
