#!/usr/bin/env bash
# Quick start, command 1: set up, then the whole pipeline on small face clips made from
# public-domain photos: prepare -> train -> evaluate (report.html) -> explain -> predict. Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
unmask demo-clips demo/clips --clips 8
unmask prepare demo/clips --dataset folder --out demo/faces --workers 2 --size 96
# A small backbone from scratch (no download); --resume finishes a run that was interrupted.
if [ ! -f demo/run/model.safetensors ]; then
  if [ -f demo/run/last.safetensors ]; then
    unmask train demo/faces --out demo/run --resume
  else
    unmask train demo/faces --out demo/run --model mobilenetv3_small --no-pretrained --size 96 \
      --epochs 15 --batch-size 16 --lr 0.001 --early-stopping 0
  fi
fi
unmask evaluate demo/run demo/faces --out demo/eval
unmask explain demo/run demo/clips/fake/fake_hopper_01.mp4 --out demo/why --max-faces 2
# One clip in, a verdict out, with the clip boxed and scored (demo/boxed.mp4).
unmask predict demo/clips/fake/fake_astronaut_02.mp4 --model demo/run --overlay demo/boxed.mp4
echo
echo "Open demo/eval/report.html (metrics, curves, timelines, heatmaps), demo/why/*.png and demo/boxed.mp4."
