"""The transform step's settings: the preprocessing module and the Beam runner."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline import storage
from kubeline.errors import InvalidInputError


@dataclass
class TransformConfig:
    """How to preprocess: fields are the transform component's inputs of the same names."""

    module_file: str = ""
    beam_runner: str = "DirectRunner"
    beam_pipeline_args: list = field(default_factory=list)

    def __post_init__(self):
        if self.module_file:
            storage.split_uri(self.module_file, "module_file")
        if not self.beam_runner:
            raise InvalidInputError("beam_runner", "is empty", "give a Beam runner name such as DirectRunner")
        bad = [a for a in self.beam_pipeline_args if not (isinstance(a, str) and a.startswith("--"))]
        if bad:
            raise InvalidInputError("beam_pipeline_args", f"{bad[0]!r} is not a --flag=value option",
                                    'give a list of options, e.g. ["--project=p", "--region=r"]')


CONFIG = TransformConfig
