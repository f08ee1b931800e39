"""Calibrate the canary analysis: how often it promotes good versions and rolls back bad ones (issue 29).

Each run deploys the stable version as a new local endpoint (a real model server on 127.0.0.1, a private
KUBELINE_HOME), then rolls a candidate out through the deploy step's own canary analysis (``deploy`` with a canary
policy and the test split replayed), and records promoted or rolled back, after how many windows and why. Kinds:

    aa          the stable model again, as another version (same answers: A/A)
    retrained   a model trained on the same data with another seed (--retrained-run)
    errors      the stable model answering 500 to 2% of requests, at random
    slow        the stable model doing twice its work on half of the requests, at random
    swapped     the stable model with the probabilities of its two most predicted classes swapped (a consistent
                wrong model whose class shares move least; the smoke test, which compares it with its own
                offline answers, passes)

Good kinds (aa, retrained) should be promoted, bad ones rolled back. The runs come from two local pipeline runs:

    kubeline run --local --output-dir runs/calibration-a --set deploy_target=none --set tune_max_trials=0
    kubeline run --local --output-dir runs/calibration-b --set deploy_target=none --set tune_max_trials=0 --set seed=7
    python benchmarks/canary_calibration.py --stable-run runs/calibration-a --retrained-run runs/calibration-b \
        [--runs 20] [--kinds aa,retrained,errors,slow,swapped] [--policy JSON] [--replay-rate 40]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

POLICY = {"steps": [20, 50, 100], "interval_s": 3.0, "scrape_interval_s": 1.0, "min_requests": 15}
ENDPOINT = "calibration"
KINDS = ("aa", "retrained", "errors", "slow", "swapped")


def stored_version(run_dir: Path) -> tuple[Path, Path]:
    """The first stored version of a local run and its evaluation artifact (the offline answers)."""
    model = run_dir / "models" / "penguins" / "1"
    evaluations = sorted(run_dir.glob("pipeline_root/*/evaluate/evaluation"))
    if not model.is_dir() or not evaluations:
        sys.exit(f"{run_dir} holds no stored version and evaluation: run the local pipeline first (see --help)")
    return model, evaluations[-1]


def wrapped(model_dir: Path, out: Path, kind: str, order: list[int]) -> Path:
    """The model saved again behind a signature that injects ``kind``'s fault (``order``: the swapped model's
    class columns), with the model's assets."""
    import tensorflow as tf

    from kubeline.core.saved_model import SIGNATURE

    loaded = tf.saved_model.load(str(model_dir))
    specs = {name: tf.TensorSpec([None], spec.dtype, name=name)
             for name, spec in loaded.signatures[SIGNATURE].structured_input_signature[1].items()}

    def fault(features):
        answer = dict(loaded.signatures[SIGNATURE](**features))
        if kind == "errors":
            fails = tf.random.uniform([]) < 0.02
            with tf.control_dependencies([tf.debugging.Assert(tf.logical_not(fails), ["injected failure"])]):
                answer["probabilities"] = tf.identity(answer["probabilities"])
        elif kind == "slow":
            def again():  # the model's own work once more, its result kept in the graph
                return tf.reduce_sum(loaded.signatures[SIGNATURE](**features)["probabilities"]) * 0.0
            extra = tf.cond(tf.random.uniform([]) < 0.5, again, lambda: tf.constant(0.0))
            answer["probabilities"] = answer["probabilities"] + extra
        elif kind == "swapped":
            answer["probabilities"] = tf.gather(answer["probabilities"], order, axis=1)
        return answer

    class Wrapped(tf.Module):
        def __init__(self):
            super().__init__()
            self.loaded = loaded

        @tf.function(input_signature=[specs])
        def serve(self, features):
            return fault(features)

    module = Wrapped()
    tf.saved_model.save(module, str(out), signatures={SIGNATURE: module.serve})
    shutil.copytree(model_dir / "assets.extra", out / "assets.extra", dirs_exist_ok=True)
    return out


def candidates(stable: Path, stable_eval: Path, retrained: tuple[Path, Path] | None, kinds: list[str],
               work: Path) -> dict:
    """Each kind's model, pushed to a scratch model root as its own version, with the offline answers it gives."""
    import numpy as np

    from kubeline.components.deploy.core import load_inputs
    from kubeline.components.push.config import PushConfig
    from kubeline.components.push.core import push
    from kubeline.serving.kserve_target import Release
    from kubeline.serving.smoke import Expected

    root = f"file://{work / 'models'}"
    schema, expected = load_inputs(str(stable), str(stable_eval))

    def pushed(model_dir: Path) -> Release:
        result = push(str(model_dir), PushConfig(root, "penguins"))
        return Release(result.uri, str(result.storage_version), 0, result.content_sha256)

    made = {"stable": (pushed(stable), expected)}
    first, second = [expected.classes.index(c) for c, _ in Counter(expected.labels).most_common(2)]
    order = list(range(len(expected.classes)))
    order[first], order[second] = second, first
    for kind in kinds:
        if kind == "retrained":
            model_dir, evaluation = retrained
            made[kind] = (pushed(model_dir), load_inputs(str(model_dir), str(evaluation))[1])
        elif kind == "aa":  # the same model as another version: one more file changes its content digest
            copy = work / "aa"
            shutil.copytree(stable, copy)
            (copy / "assets.extra" / "calibration-aa.txt").write_text("the stable model, pushed again\n")
            made[kind] = (pushed(copy), expected)
        else:
            answers = expected
            if kind == "swapped":
                probabilities = expected.probabilities[:, order]
                labels = [expected.classes[i] for i in np.argmax(probabilities, axis=1)]
                answers = Expected(expected.instances, labels, probabilities, expected.classes)
            made[kind] = (pushed(wrapped(stable, work / kind, kind, order)), answers)
    return schema, made


def one_run(kind: str, made: dict, schema, policy: dict, replay_rate: float) -> dict:
    """A new endpoint serving the stable version, then the candidate's canary analysis; its outcome."""
    from kubeline.components.deploy.config import DeployConfig
    from kubeline.components.deploy.core import deploy
    from kubeline.serving import local

    local.stop(ENDPOINT)
    stable, expected = made["stable"]
    deploy(stable, expected, schema, DeployConfig(ENDPOINT, target="local"), log=lambda line: None)
    release, answers = made[kind]
    config = DeployConfig(ENDPOINT, target="local", canary=policy, replay_rate=replay_rate)
    lines, started = [], time.monotonic()
    try:
        result = deploy(release, answers, schema, config, log=lines.append)
        outcome, windows = result.canary["outcome"], result.canary["windows"]
        reasons = [w["reason"] for w in windows if w["decision"] != "pass"]
    except Exception as error:  # noqa: BLE001 - a rollback raises; its reason is the figure
        smoke_failed = any("smoke test FAILED" in line for line in lines)
        outcome = "smoke_failed" if smoke_failed else "rolled_back"
        windows = [line for line in lines if line.startswith("deploy: canary at ")]
        reasons = [str(error).split("traffic. ", 1)[-1].splitlines()[0][:200]]
    return {"kind": kind, "outcome": outcome, "windows": len(windows), "seconds": time.monotonic() - started,
            "reasons": reasons}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stable-run", type=Path, required=True)
    parser.add_argument("--retrained-run", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--policy", default=json.dumps(POLICY), help="the canary policy (JSON)")
    parser.add_argument("--replay-rate", type=float, default=40.0)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or ("retrained" in kinds and not args.retrained_run):
        sys.exit(f"--kinds: {unknown or 'retrained needs --retrained-run'}; kinds are {', '.join(KINDS)}")
    work = Path(tempfile.mkdtemp(prefix="kubeline-calibration-"))
    os.environ["KUBELINE_HOME"] = str(work / "home")
    stable, stable_eval = stored_version(args.stable_run)
    retrained = stored_version(args.retrained_run) if args.retrained_run else None
    schema, made = candidates(stable, stable_eval, retrained, kinds, work)
    policy = json.loads(args.policy)
    results = []
    try:
        for number in range(args.runs):
            for kind in kinds:
                results.append(one_run(kind, made, schema, policy, args.replay_rate))
                print(json.dumps({"run": number, **results[-1]}), flush=True)
    finally:
        from kubeline.serving import local

        local.stop(ENDPOINT)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\npolicy {json.dumps(policy)}, replay {args.replay_rate}/s, {args.runs} runs per kind")
    print(f"{'kind':<10} {'promoted':>8} {'rolled back':>11} {'smoke failed':>12} {'windows (median)':>16} "
          f"{'s per run':>9}  most common reason for not promoting")
    for kind in kinds:
        rows = [r for r in results if r["kind"] == kind]
        count = Counter(r["outcome"] for r in rows)
        reason = Counter(re.sub(r"[\d.]+", "#", reason.split(" (limit")[0]) for r in rows
                         if r["outcome"] != "promoted" for reason in r["reasons"][:1]).most_common(1)
        print(f"{kind:<10} {count['promoted']:>8} {count['rolled_back']:>11} {count['smoke_failed']:>12} "
              f"{statistics.median(r['windows'] for r in rows):>16} "
              f"{statistics.mean(r['seconds'] for r in rows):>9.1f}  {reason[0][0][:90] if reason else '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
