"""Benchmark the model server: wrk from a separate process against the live server, beside the in-process call.

Starts the server on 127.0.0.1 for a stored model version (a private KUBELINE_HOME, stopped at the end),
loads it with single-row V1 requests at each concurrency, then times the in-process model call (the same
two-tensor graph call the server makes) for one row and for batches of 64. Needs wrk (apt-get install wrk).
With ``--payload-log DEST`` the server logs requests (``kubeline.serving.payload_log``) at
``--payload-log-sample-rate`` (default 1: every request); run it with and without, back to back, to compare.

    python benchmarks/serving.py --model-uri file:///path/to/runs/latest/models/penguins/1 [--seconds 10]
        [--payload-log DEST [--payload-log-sample-rate 1]] [--no-in-process]
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROW = {"island": "Biscoe", "bill_length_mm": 49.0, "bill_depth_mm": 15.0, "flipper_length_mm": 222.0,
       "body_mass_g": 5300.0, "sex": "male", "year": 2008.0}
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, concurrency: int, seconds: int, work_dir: Path) -> dict:
    script = work_dir / "v1.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = '{json.dumps({'instances': [ROW]})}'\n")
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    latency = {p: float(v) * UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"concurrency": concurrency, "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
            "p50_ms": latency["50"], "p99_ms": latency["99"], "non_2xx": int(errors[1]) if errors else 0}


def in_process(model_dir: str, seconds: float) -> dict:
    import tensorflow as tf

    from kubeline.core.saved_model import load_schema
    from kubeline.core.schema import NUMERIC
    from kubeline.serving.served_model import packed_predictor

    schema = load_schema(model_dir)
    run = packed_predictor(tf.saved_model.load(model_dir), schema)
    figures = {}
    for rows in (1, 64):
        columns = {f.name: np.array([ROW[f.name]] * rows, dtype=np.float32 if f.kind == NUMERIC else object)
                   for f in schema.features}
        for _ in range(50):
            run(columns)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            run(columns)
            calls += 1
        elapsed = time.perf_counter() - started
        figures[rows] = {"calls_per_s": calls / elapsed, "rows_per_s": calls * rows / elapsed,
                         "ms_per_call": elapsed / calls * 1e3}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True, help="a stored version on this machine: file://...")
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--payload-log", default="", help="log requests under this folder or URI (default: off)")
    parser.add_argument("--payload-log-sample-rate", type=float, default=1.0)
    parser.add_argument("--no-in-process", action="store_true", help="time the server only")
    args = parser.parse_args()
    if not args.model_uri.startswith("file://"):
        print("--model-uri: give a file:// stored version (the in-process call loads it from disk)", file=sys.stderr)
        return 2
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    import os

    from kubeline.serving import local
    from kubeline.serving.payload_log import LogSettings

    work_dir = Path(tempfile.mkdtemp(prefix="kubeline-serving-bench-"))
    os.environ["KUBELINE_HOME"] = str(work_dir / "home")
    settings = LogSettings(args.payload_log, args.payload_log_sample_rate) if args.payload_log else None
    state = local.start("bench", {"uri": args.model_uri, "version": "bench"}, payload_log=settings)
    try:
        url = f"{state['url']}/v1/models/bench:predict"
        wrk(url, 16, 3, work_dir)  # warm up
        runs = [wrk(url, c, args.seconds, work_dir) for c in (1, 16)]
        server_rss_mb = psutil.Process(state["pid"]).memory_info().rss / 2**20
    finally:
        local.stop("bench")
    report = {"wrk": runs, "server_rss_mb": round(server_rss_mb),
              "payload_log": {"destination": args.payload_log, "sample_rate": args.payload_log_sample_rate}
              if args.payload_log else None}
    if not args.no_in_process:
        direct = in_process(args.model_uri.removeprefix("file://"), min(args.seconds, 5))
        report["in_process"] = direct
        report["ratio_server_c16_to_in_process_single_row"] = runs[1]["requests_per_s"] / direct[1]["calls_per_s"]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'load (single-row V1)':<26}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for run in runs:
        print(f"{'wrk, concurrency ' + str(run['concurrency']):<26}{run['requests_per_s']:>10.0f}"
              f"{run['p50_ms']:>10.2f}{run['p99_ms']:>10.2f}{run['non_2xx']:>9}")
    for rows, figures in report.get("in_process", {}).items():
        print(f"{'in-process, ' + str(rows) + ' row(s)/call':<26}{figures['calls_per_s']:>10.0f} calls/s "
              f"({figures['rows_per_s']:.0f} rows/s, {figures['ms_per_call']:.2f} ms/call)")
    if "in_process" in report:
        print(f"server at concurrency 16 / in-process single-row calls: "
              f"{report['ratio_server_c16_to_in_process_single_row']:.2f}x")
    if args.payload_log:
        print(f"payload log: {args.payload_log} at sample rate {args.payload_log_sample_rate}")
    print(f"server RSS after the load: {report['server_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
