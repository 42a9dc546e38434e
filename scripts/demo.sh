#!/usr/bin/env bash
# Quick start, command 1: set up, make small face clips from public-domain photos, prepare them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
unmask demo-clips demo/clips
unmask prepare demo/clips --dataset folder --out demo/faces --workers 2
python - <<'PY'
import pandas as pd
df = pd.read_parquet("demo/faces/manifest.parquet")
print(df.groupby(["video_id", "label", "split_video"]).size().rename("crops").to_string())
PY
