"""The docs: docs/reference.md is what `make docs` writes now, every parameter, input and output is described, the
README gives the two commands, and relative links point at files that exist."""
import re
from pathlib import Path

from kfp import dsl

from kubeline import components
from kubeline.pipelines import PIPELINES, reference

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_reference_is_up_to_date():
    assert (REPO / reference.DEFAULT_PATH).read_text() == reference.render(), "docs/reference.md is stale: run make docs"


def undescribed() -> list[str]:
    missing = [f"{pipeline.pipeline_func.__name__} parameter {field.name}" for pipeline in PIPELINES.values()
               for field in reference.inputs(pipeline.component_spec) if not field.description]
    for name in components.__all__:
        op = getattr(components, name)
        missing += [f"{name} input {field.name}" for field in reference.inputs(op.component_spec)
                    if not field.description]
        missing += [f"{name} output {field.name}" for field in reference.outputs(op.component_spec, op.python_func)
                    if not field.description]
    return missing


def test_every_parameter_input_and_output_is_described():
    assert undescribed() == [], "describe each in its function's docstring (Args:, or Returns: for return values)"


def test_an_input_without_a_docstring_line_is_caught():
    @dsl.component(base_image="python:3.11-slim")
    def step(described: int, forgotten: str = ""):
        """A step.

        Args:
            described: Something.
        """

    assert [field.name for field in reference.inputs(step.component_spec) if not field.description] == ["forgotten"]


def test_the_readme_names_the_two_commands_and_ci_runs_its_test_command():
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^ +make run +#", readme, re.M) and re.search(r"^ +make test +#", readme, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text()


def anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", doc.read_text(), re.M)}


def test_relative_links_point_at_files_and_headings_that_exist():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = doc.parent / path if path else doc
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert broken == []
