"""Benchmark batch scoring: a million penguin-like rows scored end to end on this machine, checked against the server.

Generates the rows from the penguins data (rows drawn with replacement, 5% Gaussian noise on the numeric
features, the missing values kept) into a Parquet file, runs the whole job (stage "all": verify the model, plan,
read, check, score and write Parquet shards, the manifest) in a fresh process, and reports its wall time, rows/s
and peak RSS. Then starts the model server on 127.0.0.1 for the same version (a private KUBELINE_HOME, stopped at
the end) and compares its V1 predictions for a random sample of the scored rows with the batch's.

    python benchmarks/batch_predict.py --model-uri file:///path/to/models/penguins/1 [--rows 1000000]

The version must carry its evaluation (pushed by this release's push step).
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

JOB = """\
import time
started = time.perf_counter()
import json, sys, tempfile
import tensorflow  # the start-up every scoring process pays, timed apart from the job
imported = time.perf_counter()
from kubeline.components.batch_predict.config import BatchPredictConfig
from kubeline.components.batch_predict.core import run
with tempfile.TemporaryDirectory() as work_dir:
    result = run(BatchPredictConfig(sys.argv[1], sys.argv[2], sys.argv[3], rows_per_shard=int(sys.argv[4])), work_dir)
print(json.dumps({"import_s": imported - started, "run_s": time.perf_counter() - imported, "rows": result.rows,
                  "shards": len(result.shards)}))
"""
NOISE = 0.05


def penguin_rows(rows: int, path: Path, seed: int = 0) -> None:
    import pandas as pd

    from kubeline.cli.local_run import penguins_csv

    rng = np.random.default_rng(seed)
    base = pd.read_csv(penguins_csv())
    frame = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    for column in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
        frame[column] += rng.normal(0.0, base[column].std() * NOISE, rows)
    frame.to_parquet(path, index=False)


def server_check(model_uri: str, output: Path, sample: int, work_dir: Path) -> dict:
    """The batch's predictions for ``sample`` random scored rows against the model server's V1 answers."""
    import pandas as pd

    from kubeline.core.saved_model import load_schema
    from kubeline.core.schema import NUMERIC
    from kubeline.serving import local
    from kubeline.serving.client import predict_url, request
    from kubeline.serving.served_model import MAX_ROWS_PER_REQUEST

    schema = load_schema(model_uri.removeprefix("file://"))
    scored = pd.read_parquet(output / "predictions")
    rows = scored.iloc[np.random.default_rng(1).choice(len(scored), sample, replace=False)]
    instances = [{f.column: (None if pd.isna(row[f.column]) else float(row[f.column]) if f.kind == NUMERIC
                             else row[f.column]) for f in schema.features} for _, row in rows.iterrows()]
    os.environ["KUBELINE_HOME"] = str(work_dir / "home")
    state = local.start("batch-bench", {"uri": model_uri, "version": "bench"})
    try:
        served = []
        for start in range(0, sample, MAX_ROWS_PER_REQUEST):
            status, body = request("POST", predict_url(state["url"], "batch-bench"),
                                   {"instances": instances[start:start + MAX_ROWS_PER_REQUEST]})
            assert status == 200, body
            served += body["predictions"]
    finally:
        local.stop("batch-bench")
    probabilities = np.array([[p["probabilities"][c] for c in schema.classes] for p in served])
    batch = rows[[f"p_{c}" for c in schema.classes]].to_numpy(dtype=np.float64)
    return {"rows": sample, "labels_equal": [p["label"] for p in served] == rows["predicted"].tolist(),
            "max_probability_diff": float(np.abs(probabilities - batch).max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True, help="a stored version on this machine: file://...")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-shard", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2000, help="rows compared with the model server")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.model_uri.startswith("file://"):
        print("--model-uri: give a file:// stored version (the server check loads it from disk)", file=sys.stderr)
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="kubeline-batch-bench-"))
    data, output = work_dir / "penguins.parquet", work_dir / "scored"
    penguin_rows(args.rows, data)
    started = time.perf_counter()
    job = subprocess.run([sys.executable, "-c", JOB, str(data), args.model_uri, str(output), str(args.rows_per_shard)],
                         capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ})
    wall_s = time.perf_counter() - started
    if job.returncode:
        print(job.stderr[-3000:], file=sys.stderr)
        return 1
    inside = json.loads(job.stdout.strip().splitlines()[-1])
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert inside["rows"] == args.rows and inside["shards"] == math.ceil(args.rows / args.rows_per_shard)
    report = {"rows": args.rows, "rows_per_shard": args.rows_per_shard, "process_wall_s": round(wall_s, 2),
              "process_rows_per_s": round(args.rows / wall_s), "tensorflow_import_s": round(inside["import_s"], 2),
              "run_s": round(inside["run_s"], 2),
              "run_rows_per_s": round(args.rows / inside["run_s"]), "peak_rss_mb": round(peak_rss_mb),
              "input_mb": round(data.stat().st_size / 2**20, 1),
              "server_check": server_check(args.model_uri, output, args.sample, work_dir)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.rows} rows ({report['input_mb']} MB Parquet), {inside['shards']} shards of {args.rows_per_shard}")
    print(f"whole process, cold (Python start-up and {report['tensorflow_import_s']} s of TensorFlow import included): "
          f"{report['process_wall_s']} s, {report['process_rows_per_s']} rows/s")
    print(f"the job after the import (model verified and loaded; input hashed, read, checked, scored; Parquet "
          f"written): {report['run_s']} s, {report['run_rows_per_s']} rows/s")
    print(f"peak RSS of the job's process: {report['peak_rss_mb']} MB")
    check = report["server_check"]
    print(f"model server (V1, 127.0.0.1) on {check['rows']} sampled rows: labels equal: {check['labels_equal']}, "
          f"largest probability difference {check['max_probability_diff']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
