"""Compile every pipeline to YAML under pipelines/compiled/ (what CI checks is current)."""
from pathlib import Path

from kfp import compiler

from kubeline.pipelines import PIPELINES

COMPILED_DIR = Path(__file__).parent / "compiled"


def compile_all(out_dir: str | Path = COMPILED_DIR) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, pipeline in PIPELINES.items():
        path = out / file_name
        compiler.Compiler().compile(pipeline, str(path))
        paths.append(path)
    return paths
