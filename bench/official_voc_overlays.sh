#!/usr/bin/env bash
# The official DeepLabv3 MobileNetV2 (VOC, TF.js weights from ../shared/data/official_deeplab)
# imported, exported as a SavedModel and run by `predict` on the two VOC photos; writes the
# README's picture docs/official_voc_overlays.png (predict's overlays, side by side at 384x384).
#
#   bash bench/official_voc_overlays.sh [RUN_DIR]     (default runs/official_voc)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/venv.sh"
run_dir="${1:-runs/official_voc}"
official="$(cd .. && pwd)/shared/data/official_deeplab"
mkdir -p "$run_dir/photos"
cp "$official/images/bird_segmentation.bmp" "$official/images/dog_segmentation.bmp" "$run_dir/photos/"
python -m export.export_saved_model --experiment=voc_v3_mnv2_official --checkpoint="$official/tfjs_mnv2_voc_trainval" \
  --export_dir="$run_dir/export" --overwrite
python -m deeplab_tf.cli.predict --saved_model="$run_dir/export" --input="$run_dir/photos" --output="$run_dir/predictions" \
  --overwrite
python - "$run_dir/predictions" docs/official_voc_overlays.png <<'PY'
import sys

import cv2
import numpy as np

folder, output = sys.argv[1:]
panels = [cv2.resize(cv2.imread(f"{folder}/{name}_segmentation_overlay.png"), (384, 384), interpolation=cv2.INTER_AREA)
          for name in ("bird", "dog")]
cv2.imwrite(output, np.hstack(panels), [cv2.IMWRITE_PNG_COMPRESSION, 9])
print(f"Wrote {output}")
PY
