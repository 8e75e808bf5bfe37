"""docs/backtesting.ipynb runs under ``jupyter nbconvert --execute`` from any working
directory, plots inline, and stays the twin of docs/backtesting_example.py."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "backtesting.ipynb"


def _maker():
    spec = importlib.util.spec_from_file_location(
        "make_backtesting_notebook", ROOT / "scripts" / "make_backtesting_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebook_is_generated_from_its_script_twin():
    script = (ROOT / "docs" / "backtesting_example.py").read_text()
    assert json.loads(NOTEBOOK.read_text()) == _maker().notebook(script)


def test_the_notebook_executes_from_another_directory_and_plots_inline(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         str(NOTEBOOK), "--output-dir", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    cells = json.loads((tmp_path / "backtesting.ipynb").read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "<BacktestResult rows=4032" in text and "(overall)" in text
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2                     # rule set A and rule set B, inline
    assert not list(tmp_path.glob("*.png"))       # and no files written instead
