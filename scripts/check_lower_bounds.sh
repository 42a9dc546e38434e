#!/usr/bin/env bash
# Install unmask with the lowest versions pyproject's ranges allow into a throwaway virtual
# environment, and run a quick part of the test suite there (the whole pipeline included:
# prepare, train, evaluate, explain, predict, export). The environment is deleted afterwards.
#
#   bash scripts/check_lower_bounds.sh          (about 10 minutes on 2 cores; downloads ~1 GB besides torch)
#
# Each range is held to its lowest release series (scripts/lower_bounds.py); torch and
# torchvision come from requirements/torch.txt, as scripts/setup.sh installs them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
VENV=$(mktemp -d "${TMPDIR:-/tmp}/unmask-lower-bounds.XXXXXX")
BUILD=$(mktemp -d "${TMPDIR:-/tmp}/unmask-lower-build.XXXXXX")
trap 'rm -rf "$VENV" "$BUILD"' EXIT

"$PY" -m venv "$VENV"
"$PY" scripts/lower_bounds.py > "$VENV/lower.txt"
echo "check_lower_bounds: installing torch, then unmask with:"; tr '\n' ' ' < "$VENV/lower.txt"; echo
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements/torch.txt
# A copy of the source, so that building the package writes nothing into this checkout.
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$BUILD"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --prefer-binary -c "$VENV/lower.txt" "$BUILD[export,demo]" "pytest>=8"
"$VENV/bin/python" -m pip check
"$VENV/bin/python" -m pip list --format=freeze | grep -i -E "^(numpy|pandas|scikit-learn|timm|av|opencv|typer|pyarrow|pillow|torch|grad-cam|captum|fastapi)" | tr '\n' ' '; echo
# The installed package, not this checkout's src/, is what the tests import.
cd "$BUILD" && rm -rf src && "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_import.py tests/data/test_splits.py tests/data/test_sources.py tests/training/test_cost.py \
  tests/evaluation/test_evaluate.py tests/explain/test_explain.py tests/predict/test_detector.py \
  tests/models/test_export.py "$@"
