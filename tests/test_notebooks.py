"""Every notebook under notebooks/ runs top to bottom and shows what it is for: each has its own checks."""
from pathlib import Path

import nbformat
from fake_kfp_api import FakeKfpApi
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, cwd: Path) -> str:
    """Executes the notebook in ``cwd``; returns what its cells printed (none may fail)."""
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return "".join(o.get("text", "") for o in outputs)


def test_quickstart(tmp_path, monkeypatch):
    from kubeline.serving import local

    monkeypatch.setenv("KUBELINE_NOTEBOOK_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("KUBELINE_HOME", str(tmp_path / "home"))  # the notebook's endpoint runs and stops here
    try:
        text = run_notebook("quickstart.ipynb", tmp_path)
    finally:
        left = [local.stop(d["name"]) and d["name"] for d in local.deployments()]
    assert not left, f"the notebook left endpoints running: {left}"
    assert "gate: pass" in text and "['Gentoo', " in text
    assert "endpoint labels: ['Gentoo', " in text and "stopped: True" in text


def test_cluster_submission(tmp_path, monkeypatch):
    """Runs against a fake KFP API (tests/fake_kfp_api.py), whose address the notebook reads from KFP_HOST."""
    api = FakeKfpApi().start()
    try:
        monkeypatch.setenv("KFP_HOST", api.url)
        text = run_notebook("cluster_submission.ipynb", tmp_path)
    finally:
        api.stop()
    run, recurring_run = [*api.runs.values()], [*api.recurring_runs.values()]
    assert len(run) == 1 and run[0]["state"] == "SUCCEEDED"  # the refused submission sent nothing
    assert "required ['data_uri', 'model_root']" in text and "refused: epochs: " in text
    assert f"SUCCEEDED: run {run[0]['run_id']}  {api.url}/#/runs/details/{run[0]['run_id']}" in text
    assert len(recurring_run) == 1 and recurring_run[0]["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert "create recurring run 'kubeline-nightly': cron '0 0 3 * * *'" in text
    assert f"leave recurring run 'kubeline-nightly': identical ({recurring_run[0]['recurring_run_id']})" in text
    assert "replace recurring run 'kubeline-nightly': cron '0 0 3 * * *' -> '0 30 2 * * *'" in text


def test_monitoring(tmp_path, monkeypatch):
    from kubeline.serving import local

    monkeypatch.setenv("KUBELINE_NOTEBOOK_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("KUBELINE_HOME", str(tmp_path / "home"))
    try:
        text = run_notebook("monitoring.ipynb", tmp_path)
    finally:
        left = [local.stop(d["name"]) and d["name"] for d in local.deployments()]
    assert not left, f"the notebook left endpoints running: {left}"
    assert "as they are: drift: no_drift; retrain: skipped: the window's decision is no_drift" in text
    assert "shifted: drift: drift; retrain: dry_run: drift: " in text and "stopped: True" in text
    checks = sorted((tmp_path / "out" / "monitoring" / "checks").glob("*/drift.html"))
    assert len(checks) == 2 and "<svg" in checks[1].read_text()


def test_every_notebook_has_its_test():
    tested = {name.removeprefix("test_") + ".ipynb" for name in globals() if name.startswith("test_")}
    assert {path.name for path in NOTEBOOK_DIR.glob("*.ipynb")} <= tested
