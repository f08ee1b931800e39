"""Every notebook under notebooks/ runs top to bottom."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    from kubeline.serving import local

    monkeypatch.setenv("KUBELINE_NOTEBOOK_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("KUBELINE_HOME", str(tmp_path / "home"))  # the notebook's endpoint runs and stops here
    notebook = nbformat.read(path, as_version=4)
    try:
        NotebookClient(notebook, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        left = [local.stop(d["name"]) and d["name"] for d in local.deployments()]
    assert not left, f"the notebook left endpoints running: {left}"
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "gate: pass" in text and "['Gentoo', " in text
    assert "endpoint labels: ['Gentoo', " in text and "stopped: True" in text
