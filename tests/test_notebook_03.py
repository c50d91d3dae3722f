"""notebooks/03_nightly_recommendations.ipynb runs top to bottom with small settings."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_nightly_recommendations.ipynb"

#: Written over the notebook's ``parameters`` cell: a week of history keeps it quick.
SMALL = (
    'SCENARIO = "default"\nSTRATEGY = "pid"\nDAYS = 8\nSEED = 0\n'
    'SHOCK_CHANNEL = "feed"\nSHOCK_FACTOR = 2.0\n'
)


def test_notebook_03_runs(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    cells[0].source = SMALL
    # "python3" is the kernel installed in the project's environment.
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    assert (tmp_path / "recs.csv").is_file() and (tmp_path / "recs.json").is_file()
