"""The code passes the linter CI runs (ruff, configured in ruff.toml), so a lint failure shows up in `make test` too."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_code_passes_ruff():
    ruff = Path(sys.executable).parent / "ruff"
    assert ruff.exists(), "ruff is missing: install the dev extra (make, or pip install -c constraints.txt -e '.[dev]')"
    result = subprocess.run([str(ruff), "check", "--no-cache", "--output-format", "concise", "."], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"ruff check . found problems (ruff check --fix . mends some):\n{result.stdout}"
