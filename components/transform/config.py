"""The transform step's settings: the preprocessing module and the Beam runner.

A local runner (DirectRunner, Beam's other in-process runners) runs the job here on this machine's files. Any
other runner runs it on remote workers, which need their own environment: an image (or portable environment)
with TensorFlow, tf.Transform and Beam, named in ``beam_pipeline_args``; this check runs before any work (and in
``kubeline run``'s preflight). Where the job's files go on a remote runner is ``core.remote_plan``'s part.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from kubeline.cluster import images
from kubeline.core import storage
from kubeline.core.errors import InvalidInputError

# Beam's StandardOptions.LOCAL_RUNNERS: the job runs in (or beside) this process and sees its files.
LOCAL_RUNNERS = ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner", "FnApiRunner", "PrismRunner",
                 "TestDirectRunner")
# Options that name the workers' environment. Without one, Dataflow, Flink and Spark start Beam's stock SDK
# image, which has neither TensorFlow nor tf.Transform.
WORKER_ENVIRONMENT_OPTIONS = ("--sdk_container_image", "--worker_harness_container_image", "--environment_type",
                              "--environment_config")


def is_local_runner(runner: str) -> bool:
    """True for runners that run the job on this machine (local paths work); False for remote workers."""
    return runner.split(".")[-1] in LOCAL_RUNNERS or runner.lower() == "direct"


def option_value(args: list, flag: str) -> str | None:
    """The value of ``--flag=value`` (or ``--flag value``) in Beam pipeline args, or None."""
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None


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
        if not is_local_runner(self.beam_runner):
            self._check_remote()

    def _check_remote(self):
        runner, args = self.beam_runner, self.beam_pipeline_args
        if not any(option_value(args, flag) for flag in WORKER_ENVIRONMENT_OPTIONS):
            raise InvalidInputError(
                "beam_pipeline_args", f"'{runner}' runs the job on remote workers and no worker image or "
                "environment is given (Beam's stock SDK image has neither TensorFlow nor tf.Transform)",
                f'add "--sdk_container_image={images.TF}" (the kubeline-tf image with the Beam SDK boot '
                "entrypoint, see components/transform/README.md) or another image with the same TensorFlow, "
                'tf.Transform and Beam; for a portable runner "--environment_type=..." with '
                '"--environment_config=..." also does')
        temp_location = option_value(args, "--temp_location")
        if temp_location is not None and urlparse(temp_location).scheme not in storage.OBJECT_SCHEMES:
            raise InvalidInputError(
                "beam_pipeline_args", f"--temp_location='{temp_location}' is not on an object store, and "
                f"'{runner}' workers cannot see this pod's files",
                "give --temp_location=gs://BUCKET/PATH, or leave it out to use a folder beside the step's outputs")


CONFIG = TransformConfig
