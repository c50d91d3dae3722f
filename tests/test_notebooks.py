"""The research notebooks run top to bottom (with small settings) on the public API."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: Small settings per notebook, written over its ``parameters`` cell.
SMALL = {
    "01_quickstart.ipynb": (
        'EPISODES = 1\nSCENARIOS = ["steady", "bid-war"]\n'
        'STRATEGIES = ["even", "mpc", "ppo-mpc", "oracle"]\nPLOT_SCENARIO = "bid-war"\n'
    ),
    "02_train_ppo.ipynb": (
        "TIMESTEPS = 480\nEVAL_EVERY = 240\nEVAL_SEEDS = 1\nN_ENVS = 1\nSEED = 0\n"
        'PRIOR = "cold"\nPOOL = 4\n'
        'OUT = "runs/notebook_ppo_mpc.safetensors"\nCOMPARE_SCENARIO = "steady"\nCOMPARE_EPISODES = 1\n'
    ),
    "04_agent_tools.ipynb": (
        'WORKSPACE = "agent-workspace"\nSCENARIO = "default"\nDAYS = 8\nSEED = 0\n'
        'SHOCK = "7:creative_fatigue:0.4:feed"\nBUDGET = 50000\nROI_TARGET = 4\n'
    ),
    "05_your_market.ipynb": (
        'PRESET = "default"\nDAYS = 9\nHOLDOUT = 2\nEPISODES = 1\n'
        'STRATEGIES = ["mpc", "pid", "even"]\nPERTURB = 1.1\nSEED = 0\n'
    ),
}


def run_notebook(name: str, workdir: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    cells[0].source = SMALL[name]
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return notebook


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name, tmp_path):
    if name == "01_quickstart.ipynb":
        from policies.ppo import DEFAULT_POLICY

        if not DEFAULT_POLICY.is_file():
            pytest.skip("no shipped policy")
    notebook = run_notebook(name, tmp_path)
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    if name == "05_your_market.ipynb":
        from envs.scenario import Scenario

        twin = Scenario.load(tmp_path / "my-market.toml")  # the twin, a scenario like any
        assert twin.n_arms == 15 and (tmp_path / "my-market.json").is_file()
    if name == "04_agent_tools.ipynb":
        workspace = tmp_path / "agent-workspace"
        assert len(list((workspace / "applied").glob("run-*.csv"))) == 1
        assert len(list((workspace / "recommendations").glob("run-*.json"))) == 1
