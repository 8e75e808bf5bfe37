"""Build of the compiled core (metadata lives in pyproject.toml).

Environment switches:

``WEDMETRICS_REQUIRE_EXT=1``
    a failed compile is an error (CI); otherwise the build goes on without
    the extension and ``wedmetrics`` falls back to the pure-Python reference
    with a warning.
``WEDMETRICS_DEBUG=1``
    ``-O0 -g`` with AddressSanitizer and UBSan (run Python with
    ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``).
"""
from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

REQUIRE = os.environ.get("WEDMETRICS_REQUIRE_EXT", "") not in ("", "0")
DEBUG = os.environ.get("WEDMETRICS_DEBUG", "") not in ("", "0")

# -ffp-contract=off: no fused multiply-add, so float results match the
# reference bit for bit; never -ffast-math for the same reason.
# -fvisibility=hidden: the C core's functions are private to the module, so
# calls between them need no PLT and can be inlined.
if DEBUG:
    COMPILE = ["-O0", "-g", "-std=c99", "-ffp-contract=off", "-fvisibility=hidden",
               "-fno-omit-frame-pointer",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    LINK = ["-fsanitize=address,undefined"]
else:
    # -flto: the record path crosses core.c and sketch.c; -fno-tree-loop-
    # distribute-patterns: shifting a few entries of a small bin list must stay
    # a loop, not become a call to memmove.
    COMPILE = ["-O3", "-std=c99", "-ffp-contract=off", "-fvisibility=hidden", "-flto",
               "-fno-tree-loop-distribute-patterns"]
    LINK = ["-O3", "-ffp-contract=off", "-flto", "-fno-tree-loop-distribute-patterns"]


def _extensions():
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE:
            raise
        print(f"wedmetrics: cannot build the compiled core ({exc}); using the reference",
              file=sys.stderr)
        return []
    ext = Extension(
        "wedmetrics._kernels._core",
        sources=["wedmetrics/_kernels/_core.pyx", "csrc/sketch.c", "csrc/core.c", "csrc/wal.c"],
        include_dirs=["csrc", numpy.get_include()],
        depends=["csrc/sketch.h", "csrc/core.h", "wedmetrics/_kernels/_core.pxd"],
        extra_compile_args=COMPILE,
        extra_link_args=LINK,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        optional=not REQUIRE,
    )
    try:
        built = cythonize([ext], compiler_directives={
            "language_level": 3, "boundscheck": False, "wraparound": False,
            "embedsignature": True})
    except Exception as exc:  # a Cython error: same policy as a C compile error
        if REQUIRE:
            raise
        print(f"wedmetrics: cythonize failed ({exc}); using the reference", file=sys.stderr)
        return []
    for e in built:             # cythonize() drops optional=; put it back
        e.optional = not REQUIRE
    return built


class OptionalBuildExt(build_ext):
    """build_ext that turns compile failures into a warning unless required."""

    def run(self):
        self._broken = set()
        try:
            super().run()
        except Exception as exc:
            self._failed(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._broken.add(ext.name)
            self._failed(exc)

    def copy_extensions_to_source(self):
        # never copy a stale artifact of an earlier build in place of one that failed
        kept = self.extensions
        self.extensions = [e for e in kept if e.name not in self._broken]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = kept

    def _failed(self, exc):
        if REQUIRE:
            raise exc
        print(f"wedmetrics: the compiled core did not build ({exc}); the pure-Python "
              "reference will be used", file=sys.stderr)


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
