"""The lock (constraints.txt, written by `make lock`) as the tests read it."""
import re
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "constraints.txt"
UPGRADE_HINT = ("install the locked versions (`make test` reinstalls whenever the lock changes; in an environment "
                "of your own: `pip install -c constraints.txt -e '.[all,dev]'`); to upgrade on purpose run "
                "`make lock UPGRADE=1 && make compile && make test` and commit constraints.txt with "
                "pipelines/compiled/")


def normalize(name: str) -> str:
    """PEP 503 name: `Foo_Bar` and `foo-bar` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[normalize(name)] = version
    return pins
