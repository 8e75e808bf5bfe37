"""``python -m wedmetrics``: see :mod:`wedmetrics.cli`."""
import sys

from .cli import main

sys.exit(main())
