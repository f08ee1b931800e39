"""A Katib trial: train once with the trial's hyperparameters and print the objective.

    python -m kubeline.components.train.trial --transformed_train=URI --transformed_validation=URI \\
        --transform_graph=URI [--model_dir=PATH] --seed=42 --learning_rate=0.01 --hidden_units=32 ...

The command line is the training contract's (``kubeline.core.training``: ``TRIAL_MODULE``, ``TRIAL_INPUTS``,
``trial_args``). URIs may be local paths or object-store prefixes (downloaded first). Metrics are printed as
``<time> name=value`` lines (``metric_lines``), which Katib's StdOut metrics collector reads: the validation
metrics after every epoch, then the final ones (the restored best epoch when early stopping), the last printed
and so, by time, Katib's ``latest``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import fields

from kubeline.components.train.core import train
from kubeline.core import storage
from kubeline.core.training import DEFAULT_SEED, TRIAL_INPUTS, TRIAL_MODULE, HParams, metric_lines


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {TRIAL_MODULE}", description=__doc__.splitlines()[0])
    for name in TRIAL_INPUTS:
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--model_dir", default="", help="where to export the model (default: discarded)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    for f in fields(HParams):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    hparams = HParams(**{f.name: getattr(args, f.name) for f in fields(HParams)})
    with tempfile.TemporaryDirectory() as work_dir:
        local = {name: str(storage.fetch_dir(getattr(args, name), f"{work_dir}/{name}", field=f"--{name}"))
                 for name in TRIAL_INPUTS}
        result = train(local["transformed_train"], local["transformed_validation"], local["transform_graph"],
                       args.model_dir or f"{work_dir}/model", hparams, seed=args.seed)
    print(metric_lines(result.objective), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
