"""Every GitHub Actions workflow here, this repository's and the template for users' repositories, passes
actionlint (with shellcheck on its scripts), pins its actions to commits, and runs commands that exist."""
from pathlib import Path

import pytest
import yaml
from test_cluster_e2e import REPO, lint, tool

WORKFLOWS = sorted([*(REPO / ".github" / "workflows").glob("*.yml"), *(REPO / "docs" / "ci").glob("*.yml")])


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint_and_pins_its_actions(path: Path):
    lint([tool("actionlint"), "-shellcheck", tool("shellcheck"), "-no-color", str(path.relative_to(REPO))])
    workflow = yaml.safe_load(path.read_text())
    uses = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert uses and all(len(use.split("@")[1]) == 40 for use in uses), uses
    assert workflow["permissions"] == {"contents": "read"}


def test_the_ci_workflows_commands_are_the_projects():
    """The lint job runs ruff, the check job `kubeline check`, which a light install has; the tests job runs the
    README's command."""
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    commands = "\n".join(step.get("run", "") for job in ci["jobs"].values() for step in job["steps"])
    assert "kubeline check" in commands and "make test" in commands and "ruff check ." in commands
    assert "make test" in (REPO / ".ci" / "run").read_text()
