#!/usr/bin/env bash
# CamVid on this machine: trains `camvid_mnv2_v3plus` (from scratch; or $EXPERIMENT) on the 367 train images,
# evaluates on the 101 val images (single scale; 6 scales + flip; each without and with the dense
# CRF), exports a SavedModel, checks the export's val mIoU against the checkpoint's, and writes
# the results table (RUN_DIR/results.md).
#
#   bash bench/camvid.sh [RUN_DIR]          (default runs/camvid_bench)
#   CAMVID_DIR=/path/to/camvid SEED=0 bash bench/camvid.sh runs/camvid_seed0
#   OVERRIDES=train.steps=100,data.max_examples=8 bash bench/camvid.sh runs/camvid_smoke   (a quick check)
#   EXPERIMENT=camvid_mnv2_voc_transfer \
#     OVERRIDES=train.init_checkpoint=../shared/data/official_deeplab/tfjs_mnv2_voc_trainval \
#     bash bench/camvid.sh runs/camvid_transfer      (fine-tuned from the official VOC model)
#
# Rerunning continues an interrupted training from its latest checkpoint and redoes the
# evaluations. RUN_DIR/timings.tsv records the wall-clock seconds of every phase of every run,
# RUN_DIR/provenance.txt the CPU, TensorFlow and commit of every run (`bench/provenance.py`).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/venv.sh"
run_dir="${1:-runs/camvid_bench}"
camvid="${CAMVID_DIR:-$(cd .. && pwd)/shared/data/camvid}"
seed="${SEED:-0}"
experiment="${EXPERIMENT:-camvid_mnv2_v3plus}"
data="--override=data.data_dir=$camvid,train.seed=$seed${OVERRIDES:+,$OVERRIDES}"
mkdir -p "$run_dir"

phase() {  # phase NAME COMMAND...: runs COMMAND, appends "NAME<TAB>seconds" to timings.tsv
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - start ))" >> "$run_dir/timings.tsv"
}

python -m bench.provenance | tee -a "$run_dir/provenance.txt"   # the CPU and code of each run
phase train python -m deeplab_tf.cli.train --experiment=$experiment --model_dir="$run_dir" "$data"
phase eval_single_crf python -m deeplab_tf.cli.evaluate --experiment=$experiment --model_dir="$run_dir" "$data" \
  --scales=1.0 --noflip --crf --num_visualizations=4 --output_dir="$run_dir/val_single"
phase eval_msflip_crf python -m deeplab_tf.cli.evaluate --experiment=$experiment --model_dir="$run_dir" "$data" \
  --scales=0.5,0.75,1.0,1.25,1.5,1.75 --flip --crf --trimap_widths= --output_dir="$run_dir/val_msflip"
phase export python -m export.export_saved_model --experiment=$experiment --checkpoint="$run_dir" "$data" \
  --export_dir="$run_dir/export" --overwrite
phase eval_saved_model python -m deeplab_tf.cli.evaluate --experiment=$experiment --saved_model="$run_dir/export" \
  "$data" --trimap_widths= --output_dir="$run_dir/val_saved_model"
python -m bench.camvid_results "$run_dir"
echo "SavedModel: $run_dir/export"
echo "Results:    $run_dir/results.md"
