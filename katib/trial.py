"""A Katib trial: train once with the trial's hyperparameters and print the objective.

    python -m kubeline.tuning.trial --transformed-train URI --transformed-eval URI --transform-graph URI \\
        [--model-dir PATH] --learning_rate=0.01 --hidden_units=32 ...

URIs may be local paths or gs:// prefixes (downloaded first). Metrics are printed as ``name=value``
lines, which Katib's StdOut metrics collector reads: the validation metrics after every epoch, then the
final ones (the restored best epoch when early stopping).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import fields

from kubeline import storage
from kubeline.components.train.core import HParams, train


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kubeline.tuning.trial", description=__doc__.splitlines()[0])
    for name in ("transformed-train", "transformed-eval", "transform-graph"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--model-dir", default="", help="where to export the model (default: discarded)")
    parser.add_argument("--seed", type=int, default=42)
    for f in fields(HParams):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    hparams = HParams(**{f.name: getattr(args, f.name) for f in fields(HParams)})
    with tempfile.TemporaryDirectory() as work_dir:
        local = {name: str(storage.fetch_dir(getattr(args, name), f"{work_dir}/{name}", field=f"--{name}"))
                 for name in ("transformed_train", "transformed_eval", "transform_graph")}
        result = train(local["transformed_train"], local["transformed_eval"], local["transform_graph"],
                       args.model_dir or f"{work_dir}/model", hparams, seed=args.seed)
    for name, value in result.objective.items():
        print(f"{name}={value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
