"""Both kernel implementations, side by side.

The compiled core is skipped only when it did not build AND
``WEDMETRICS_PUREPYTHON`` is set; anywhere else (notably under
``WEDMETRICS_REQUIRE_EXT=1``) a missing extension fails these tests.
"""
from __future__ import annotations

import os
import types

import pytest

from wedmetrics._kernels import _core_ref, _sketch_ref

try:
    from wedmetrics._kernels import _core as _compiled
    _IMPORT_ERROR = None
except ImportError as exc:  # reported by the fixtures below
    _compiled = None
    _IMPORT_ERROR = exc

_PURE = os.environ.get("WEDMETRICS_PUREPYTHON", "") not in ("", "0")
_REQUIRE = os.environ.get("WEDMETRICS_REQUIRE_EXT", "") not in ("", "0")

REFERENCE = types.SimpleNamespace(name="reference", Sketch=_sketch_ref.Sketch,
                                  Core=_core_ref.Core, Handle=_core_ref.Handle,
                                  LabelIndex=_core_ref.LabelIndex)


def compiled_impl() -> types.SimpleNamespace:
    """The compiled classes, or skip/fail as the module docstring says."""
    if _compiled is None:
        if _PURE and not _REQUIRE:
            pytest.skip(f"compiled core not built ({_IMPORT_ERROR}) and WEDMETRICS_PUREPYTHON set")
        pytest.fail(f"the compiled core wedmetrics._kernels._core did not import: {_IMPORT_ERROR}")
    return types.SimpleNamespace(name="compiled", Sketch=_compiled.Sketch, Core=_compiled.Core,
                                 Handle=_compiled.Handle, LabelIndex=_compiled.LabelIndex)


@pytest.fixture(params=["reference", "compiled"])
def impl(request):
    """Each implementation in turn."""
    return REFERENCE if request.param == "reference" else compiled_impl()


@pytest.fixture
def compiled():
    """The compiled implementation (for parity against ``REFERENCE``)."""
    return compiled_impl()
