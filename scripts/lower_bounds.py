"""Print a pip constraints file that holds each of pyproject's ranges to its lowest release series.

``numpy>=1.26,<3`` becomes ``numpy==1.26.*``: the oldest versions the ranges promise to work with.
torch and torchvision are left out: they are installed first, from requirements/torch.txt.
Used by scripts/check_lower_bounds.sh; needs Python >= 3.11 (tomllib).
"""

import re
import sys
import tomllib
from pathlib import Path

EXTRAS = ("export", "demo")  # what a user installs; the test extra keeps its pins
FIRST = {"torch", "torchvision"}


def main() -> int:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in EXTRAS for r in project["optional-dependencies"][extra]]
    for requirement in requirements:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)\s*(,.*)?", requirement)
        if match is None:
            print(f"error: {requirement!r} has no lower bound (>=)", file=sys.stderr)
            return 1
        if match[1].lower() not in FIRST:
            print(f"{match[1]}=={match[2]}.*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
