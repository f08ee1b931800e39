"""Compile pipelines to YAML (by default this package's, under pipelines/compiled/, which CI checks is current)."""
from pathlib import Path

from kfp import compiler

COMPILED_DIR = Path(__file__).parent / "compiled"


def compile_all(out_dir: str | Path = COMPILED_DIR, pipelines: dict | None = None) -> list[Path]:
    """Compiles ``pipelines`` (compiled file name -> pipeline; default: ``kubeline.pipelines.PIPELINES``) into
    ``out_dir``."""
    if pipelines is None:
        from kubeline.pipelines import PIPELINES

        pipelines = PIPELINES
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, pipeline in pipelines.items():
        path = out / file_name
        compiler.Compiler().compile(pipeline, str(path))
        paths.append(path)
    return paths
