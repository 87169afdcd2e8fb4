"""Training throughput (images/s) on this machine: one device vs 2 logical CPU devices
(MirroredStrategy) vs 2 local worker processes (MultiWorkerMirroredStrategy), same global batch.

    python -m bench.training_scaling [--steps=30] [--batch=8] [--crop=129] [--data_dir=../shared/data/camvid]

Each configuration trains `camvid_mnv2_v3plus` (MobileNetV2-0.35, small heads) from scratch in
fresh processes and reads the img/s of the progress lines after the first `--warmup` steps. On a
CPU-only machine the replicas share the same cores, so this measures the overhead of
tf.distribute (all-reduce, synchronised batch norm, input sharding), not a speed-up.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap

from bench import provenance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
LOGICAL = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from deeplab_tf.cli.train import main
    from deeplab_tf.cli.flags import run
    sys.argv = ["train", *sys.argv[1:]]
    run(main)
    """
)


def overrides(args) -> str:
    return (
        "model.backbone_alpha=0.35,model.aspp_filters=64,model.decoder_filters=64,model.low_level_filters=24,"
        f"data.dataset=camvid_folder,data.data_dir='{args.data_dir}',data.shuffle_buffer=64,"
        f"data.crop_size={args.crop},train.batch_size={args.batch},train.steps={args.steps},train.warmup_steps=0,"
        f"train.log_every={args.warmup},train.checkpoint_every=100000"
    )


def images_per_second(output: str) -> float:
    """Returns the img/s of the last progress line (the window after the first log)."""
    return float(re.findall(r"step \d+/\d+ .* ([\d.]+) img/s", output)[-1])


def command(args, model_dir, strategy, entry):
    return [*entry, "--experiment=camvid_mnv2_v3plus", f"--model_dir={model_dir}", f"--strategy={strategy}",
            f"--override={overrides(args)}"]


def run_one(args, root, name):
    model_dir = os.path.join(root, name)
    if name == "one_device":
        cmds = [(command(args, model_dir, "one_device", [sys.executable, "-m", "deeplab_tf.cli.train"]), ENV)]
    elif name == "mirrored_2_logical_cpus":
        cmds = [(command(args, model_dir, "mirrored", [sys.executable, "-c", LOGICAL]), ENV)]
    else:
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        cmds = [
            (command(args, model_dir, "multi_worker_mirrored", [sys.executable, "-m", "deeplab_tf.cli.train"]),
             {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
            for i in range(2)
        ]
    processes = [subprocess.Popen(c, env=e, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c, e in cmds]
    try:
        outputs = [p.communicate(timeout=1800)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
            p.wait()
    for p, output in zip(processes, outputs):
        if p.returncode:
            raise RuntimeError(f"{name} failed:\n{output[-3000:]}")
    return images_per_second(outputs[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10, help="steps before the timed window")
    parser.add_argument("--batch", type=int, default=8, help="global batch")
    parser.add_argument("--crop", type=int, default=129)
    parser.add_argument("--data_dir", default=os.path.join(REPO, "..", "shared", "data", "camvid"))
    args = parser.parse_args()
    print(provenance.describe())
    args.data_dir = os.path.abspath(args.data_dir)
    with tempfile.TemporaryDirectory() as root:
        results = {name: run_one(args, root, name)
                   for name in ("one_device", "mirrored_2_logical_cpus", "multi_worker_2_processes")}
    print(f"| configuration | images/s (global batch {args.batch}, crop {args.crop}, steps {args.warmup + 1}-{args.steps}) |")
    print("|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    main()
