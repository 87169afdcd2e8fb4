#!/usr/bin/env bash
# Issue 21's measurements of the CPU this runs on, in one command (about 15 min on 2 cores):
# deeplab-tf beside PyTorch (eager, and frozen for inference) in float32 and bfloat16, training and
# inference; the profile of each of those four steps; the CamVid recipe's bfloat16 step with and
# without the tuned depthwise layers; the row of BENCHMARKS.md's per-CPU table.
#
#   bash bench/cpu_report.sh [OUT_DIR]        (default runs/cpu_report_<cpu model>_<UTC time>)
#
# Run it on an idle machine: the peers alternate within each run, so their ratios hold under
# load, but the profiles' wall times and the conv-peak percentages do not. The torch virtualenv is
# created on first use (bench/peers/venvs.py, a few minutes). OUT_DIR gets provenance.txt,
# peers_<mode>_<precision>.json/.log, profile_<mode>_<precision>.json/.txt,
# step_variants_camvid_training_bfloat16.txt and cpu_table.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/venv.sh
machine="$(python -m bench.provenance)"
cpu_name="$(python -c 'import re; from deeplab_tf.cpu import cpu; print(re.sub("[^A-Za-z0-9]+", "_", cpu()[0]).strip("_"))')"
default_dir="runs/cpu_report_${cpu_name}_$(date -u +%Y%m%dT%H%M)"
out="${1:-$default_dir}"
mkdir -p "$out"
echo "$machine" | tee -a "$out/provenance.txt"
for precision in float32 bfloat16; do
  python -m bench.peers_compare --mode=inference --precision=$precision --peers=deeplab_tf,torch,torch_frozen \
    --json="$out/peers_inference_$precision.json" 2>&1 | tee "$out/peers_inference_$precision.log" \
    || echo "peers_compare (inference, $precision) exited with status $?: a peer failed, see its log"
  python -m bench.peers_compare --mode=training --precision=$precision --peers=deeplab_tf,torch \
    --json="$out/peers_training_$precision.json" 2>&1 | tee "$out/peers_training_$precision.log" \
    || echo "peers_compare (training, $precision) exited with status $?: a peer failed, see its log"
done
for precision in float32 bfloat16; do
  for mode in inference training; do
    served=""
    if [ $mode = inference ]; then served=--served; fi   # the model as the exporter serves it
    python -m bench.profile_step --mode=$mode --precision=$precision --top=25 $served \
      --json="$out/profile_${mode}_$precision.json" > "$out/profile_${mode}_$precision.txt" 2>&1
  done
done
# The CamVid recipe's bfloat16 step with the tuned depthwise layers against Keras' own.
python -m bench.step_variants --mode=training --experiment=camvid_mnv2_v3plus --num_classes=11 --batch=8 --size=321 \
  --precision=bfloat16 --variants="tuned:;keras_depthwise:+keras_depthwise" --rounds=9 --tolerance=5e-2 \
  > "$out/step_variants_camvid_training_bfloat16.txt" 2>&1
python -m bench.cpu_table "$out"/peers_*.json | tee "$out/cpu_table.md"
python -m bench.cpu_table --against=torch_frozen "$out"/peers_inference_*.json | tee -a "$out/cpu_table.md"
