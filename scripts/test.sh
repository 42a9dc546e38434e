#!/usr/bin/env bash
# Quick start, command 2: set up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
python -m pytest "$@"
