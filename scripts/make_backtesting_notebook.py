"""Write docs/backtesting.ipynb from its script twin, docs/backtesting_example.py.

The script's docstring becomes the first markdown cell; each ``# %%`` block
becomes a markdown cell (its leading comment lines) and a code cell (the rest).
Run from anywhere: ``python scripts/make_backtesting_notebook.py``.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def cell(kind: str, text: str, number: int) -> dict:
    lines = text.strip("\n").splitlines(keepends=True)
    c = {"cell_type": kind, "id": f"{kind}-{number}", "metadata": {}, "source": lines}
    if kind == "code":
        c.update(execution_count=None, outputs=[])
    return c


def notebook(script: str) -> dict:
    doc = ast.get_docstring(ast.parse(script))
    cells = [cell("markdown", "# " + doc, 0)]
    for n, block in enumerate(script.split("# %%\n")[1:], 1):
        lines = block.splitlines(keepends=True)
        k = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        cells.append(cell("markdown", "".join(line[2:] for line in lines[:k]), n))
        cells.append(cell("code", "".join(lines[k:]), n))
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                        "name": "python3"},
                         "language_info": {"name": "python"}}}


if __name__ == "__main__":
    script = (DOCS / "backtesting_example.py").read_text()
    (DOCS / "backtesting.ipynb").write_text(json.dumps(notebook(script), indent=1) + "\n")
