"""Benchmark: a drift check of 1,000,000 rows (8 numeric, 4 categorical features) read from Parquet and CSV.

    .venv/bin/python benchmarks/drift.py [ROWS]

Prints the seconds of the check as the component runs it (read the window, type it, run every test, decide),
for unchanged data and for one feature shifted by half a standard deviation. Target: under 30 s for a million
rows on a 2-core machine.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kubeline.components.drift.config import DriftConfig
from kubeline.components.drift.core import run
from kubeline.core import profile
from kubeline.core.schema import CATEGORICAL, NUMERIC, Feature, Schema

NUMERIC_FEATURES, CATEGORICAL_FEATURES = 8, 4


def rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {f"x{i}": rng.normal(i + (shift if i == 0 else 0.0), 1 + i, n) for i in range(NUMERIC_FEATURES)}
    columns.update({f"c{i}": rng.choice([f"v{j}" for j in range(5 + i)], n) for i in range(CATEGORICAL_FEATURES)})
    return pd.DataFrame({**columns, "y": rng.choice(["a", "b", "c"], n)})


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    schema = Schema("y", ["a", "b", "c"],
                    [Feature(f"x{i}", NUMERIC) for i in range(NUMERIC_FEATURES)]
                    + [Feature(f"c{i}", CATEGORICAL, domain=[f"v{j}" for j in range(5 + i)])
                       for i in range(CATEGORICAL_FEATURES)])
    with tempfile.TemporaryDirectory() as work:
        profile.save(profile.build(rows(100_000, seed=1), schema), Path(work) / "profile.json")
        for name, shift in (("unchanged", 0.0), ("x0 shifted 0.5 sd", 0.5)):
            window = rows(n, seed=2, shift=shift)
            for suffix in ("parquet", "csv"):
                path = Path(work) / f"window.{suffix}"
                if suffix == "parquet":
                    window.to_parquet(path)
                else:
                    window.to_csv(path, index=False)
                config = DriftConfig(window_uri=str(path), model_uri="", profile_uri=str(Path(work) / "profile.json"))
                start = time.perf_counter()
                result = run(config)
                seconds = time.perf_counter() - start
                drifted = [f.feature for f in result.features if f.status == "drift"]
                print(f"{n:>9} rows, {name:<18} {suffix:<7}: {seconds:6.2f} s, {result.decision} {drifted}")


if __name__ == "__main__":
    main()
