#!/usr/bin/env bash
# Creates/uses .venv, installs deeplab-tf, then trains the `demo` experiment on the embedded
# generated data, evaluates it, exports a SavedModel and predicts on a few images.
# Everything lands under runs/demo/. Rerunning resumes (training is skipped when complete).
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
python -m pip install --quiet -e .
run_dir=runs/demo
start=$(date +%s)
python -m deeplab_tf.cli.train --experiment=demo --model_dir="$run_dir"
python -m deeplab_tf.cli.evaluate --experiment=demo --model_dir="$run_dir"
python -m export.export_saved_model --experiment=demo --checkpoint="$run_dir" \
  --export_dir="$run_dir/export" --overwrite
python -m deeplab_tf.cli.write_images --experiment=demo --split=val --count=4 --output="$run_dir/sample_images" \
  --overwrite
python -m deeplab_tf.cli.predict --saved_model="$run_dir/export" --input="$run_dir/sample_images" \
  --output="$run_dir/predictions" --overwrite
echo
echo "demo finished in $(( $(date +%s) - start ))s"
echo "  metrics:     $run_dir/val/eval.json (and report.md, confusion.png, trimap.png beside it)"
echo "  SavedModel:  $run_dir/export"
echo "  predictions: $run_dir/predictions (label PNGs and *_overlay.png)"
