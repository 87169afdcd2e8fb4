"""TFLite export of a shipped CamVid model (`--model`, default the transfer model) at each precision: file size, val mIoU through
`deeplab_tf.cli.evaluate --tflite`, latency at 360x480 with 1 and 2 threads beside the SavedModel's;
and the official DeepLabv3 TFLite file beside ours of the same weights (size, latency).

    python -m bench.tflite_precisions [--model=camvid_mnv2_voc_transfer] [--data_dir=../shared/data/camvid] [--output_dir=runs/tflite_bench] \
        [--calibration_images=100] [--latency_images=20] [--rounds=3] [--skip_eval] [--reuse] \
        [--official_rounds=10] [--official_only | --skip_official]

Every export and evaluation is the command a user runs (`python -m export.export_tflite`,
`python -m export.export_saved_model`, `python -m deeplab_tf.cli.evaluate`), run as a child
process; the commands are printed and kept in OUTPUT_DIR/results.json (written after each phase).
With --reuse, an export or evaluation whose file (the .tflite, the SavedModel, eval.json) is
already in OUTPUT_DIR is kept, not redone. Latency: one child process
per thread count (TensorFlow's intra- and inter-op threads and the interpreters' `num_threads` set
to it) loads every model and calls them in turn, image by image, --rounds times over
--latency_images CamVid val images (one warm-up call each first), so a busy machine slows all of
them alike: compare the ratios. TFLite runs in `ai_edge_litert`'s interpreter with its default
XNNPACK delegate; the SavedModel's `serving_image_tensor` returns labels and probabilities, as the
.tflite files do. The official comparison feeds both 257x257 files the same resized val images
(ours uint8, the official file (x - 127.5) / 127.5) and returns logits from both.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench import provenance

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data", "camvid")
OFFICIAL = os.path.join(REPO_ROOT, "..", "shared", "data", "official_deeplab", "tflite_mnv2_dm05_voc",
                        "deeplabv3_257_mv_gpu.tflite")
PRECISIONS = ("float32", "float16", "dynamic_range", "int8")
SIZE = (360, 480)


def command(*args) -> list:
    return [sys.executable, "-m", *args]


def run(args: list, log) -> float:
    """Runs `args` (a command line) from the repository root; returns its wall seconds. Raises
    CalledProcessError with its stderr when it fails."""
    log("$ " + " ".join(os.path.relpath(a, REPO_ROOT) if a == sys.executable else a for a in args))
    start = time.perf_counter()
    result = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode:
        raise subprocess.CalledProcessError(result.returncode, args, result.stdout, result.stderr)
    return time.perf_counter() - start


def val_images(data_dir: str, count: int, size=None):
    """Returns `count` CamVid val images, RGB uint8 [1, H, W, 3] (resized bilinearly to `size`)."""
    import numpy as np
    from PIL import Image

    with open(os.path.join(data_dir, "val.txt")) as f:
        names = [line.split()[0] for line in f if line.strip()][:count]
    images = []
    for name in names:
        image = Image.open(os.path.join(data_dir, name)).convert("RGB")
        if size:
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        images.append(np.asarray(image)[None])
    return images


def latency_child(spec: dict) -> dict:
    """Times every model of `spec` in turn on the same images (module docstring); returns
    {model name: {"median_ms", "mean_ms", "calls"}}."""
    threads = spec["threads"]
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import numpy as np

    from deeplab_tf.evaluation.tflite_segmenter import TFLiteSegmenter

    images = val_images(spec["data_dir"], spec["images"], spec.get("size"))
    calls = {}
    for name, (kind, path) in spec["models"].items():
        if kind == "saved_model":
            signature = tf.saved_model.load(path).signatures["serving_image_tensor"]
            calls[name] = lambda image, s=signature: {k: v.numpy() for k, v in s(images=tf.constant(image)).items()}
        elif kind == "official":
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_path=path, num_threads=threads)
            interpreter.allocate_tensors()
            (feed,), (fetch,) = interpreter.get_input_details(), interpreter.get_output_details()

            def official(image, interpreter=interpreter, feed=feed, fetch=fetch):
                interpreter.set_tensor(feed["index"], (image.astype(np.float32) - 127.5) / 127.5)
                interpreter.invoke()
                return interpreter.get_tensor(fetch["index"])

            calls[name] = official
        else:
            calls[name] = TFLiteSegmenter(path, num_threads=threads)
    for call in calls.values():
        call(images[0])  # warm-up
    times = {name: [] for name in calls}
    for _ in range(spec["rounds"]):
        for image in images:
            for name, call in calls.items():
                start = time.perf_counter()
                call(image)
                times[name].append(time.perf_counter() - start)
    return {name: {"median_ms": 1000 * statistics.median(t), "mean_ms": 1000 * statistics.mean(t), "calls": len(t)}
            for name, t in times.items()}


def latency(models: dict, threads: int, args, size=None) -> dict:
    spec = {"models": models, "threads": threads, "data_dir": args.data_dir, "images": args.latency_images,
            "rounds": args.rounds, "size": size}
    result = subprocess.run(command("bench.tflite_precisions", "--latency_child", json.dumps(spec)), cwd=REPO_ROOT,
                            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode:
        raise RuntimeError(f"latency child failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="camvid_mnv2_voc_transfer",
                        help="A shipped zoo model: its name is both the experiment and the checkpoint.")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--output_dir", default=os.path.join(REPO_ROOT, "runs", "tflite_bench"))
    parser.add_argument("--calibration_images", type=int, default=100)
    parser.add_argument("--latency_images", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip_eval", action="store_true", help="Sizes and latencies only.")
    parser.add_argument("--reuse", action="store_true", help="Keep exports and evaluations already in --output_dir.")
    parser.add_argument("--official_rounds", type=int, default=10, help="Rounds of the official-vs-ours timing.")
    parser.add_argument("--official_only", action="store_true", help="Only the official-vs-ours comparison.")
    parser.add_argument("--skip_official", action="store_true", help="No official-vs-ours comparison.")
    parser.add_argument("--latency_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency_child:
        print(json.dumps(latency_child(json.loads(args.latency_child))))
        return
    run_provenance = provenance.record()
    print(provenance.describe(run_provenance))
    out = os.path.abspath(args.output_dir)
    os.makedirs(out, exist_ok=True)
    data = f"--override=data.data_dir={os.path.abspath(args.data_dir)}"
    log_lines = []

    def log(line):
        print(line, flush=True)
        log_lines.append(line)

    results = {"provenance": run_provenance, "commands": log_lines, "precisions": {}, "official": {}}
    if args.official_only:
        official_comparison(results, out, args, log)
        save(results, out, "results_official.json")
        print(table(results))
        return
    files = {p: os.path.join(out, f"camvid_{p}.tflite") for p in PRECISIONS}
    for precision, path in files.items():
        if args.reuse and os.path.exists(path):
            log(f"(kept {path})")
            results["precisions"][precision] = {"bytes": os.path.getsize(path)}
            continue
        seconds = run(command("export.export_tflite", f"--experiment={args.model}", f"--checkpoint={args.model}", data,
                              f"--output={path}", f"--input_size={SIZE[0]}x{SIZE[1]}", f"--precision={precision}",
                              *([f"--calibration_images={args.calibration_images}"] if precision == "int8" else []),
                              "--overwrite"), log)
        results["precisions"][precision] = {"bytes": os.path.getsize(path), "export_seconds": seconds}
    saved_model = os.path.join(out, "saved_model")
    if not (args.reuse and os.path.exists(os.path.join(saved_model, "saved_model.pb"))):
        run(command("export.export_saved_model", f"--experiment={args.model}", f"--checkpoint={args.model}", data,
                    f"--export_dir={saved_model}", f"--input_size={SIZE[0]}x{SIZE[1]}", "--overwrite"), log)
    results["precisions"]["saved_model"] = {}

    def evaluate(name, model):
        folder = os.path.join(out, f"eval_{name}")
        if not (args.reuse and os.path.exists(os.path.join(folder, "eval.json"))):
            run(command("deeplab_tf.cli.evaluate", f"--experiment={args.model}", data, *model,
                        "--trimap_widths=", f"--output_dir={folder}"), log)
        with open(os.path.join(folder, "eval.json")) as f:
            evaluated = json.load(f)
        results["precisions"].setdefault(name, {}).update(miou=evaluated["miou"], images=evaluated["num_images"])
        save(results, out)

    if not args.skip_eval:
        for precision, path in files.items():
            evaluate(precision, [f"--tflite={path}"])
    models = {"saved_model": ("saved_model", saved_model), **{p: ("tflite", path) for p, path in files.items()}}
    for threads in (1, 2):
        log(f"latency, {threads} thread(s): {args.latency_images} images x {args.rounds} rounds, models in turn")
        for name, timing in latency(models, threads, args).items():
            results["precisions"][name][f"latency_{threads}"] = timing
        save(results, out)

    if not args.skip_official:
        official_comparison(results, out, args, log)
        save(results, out)
    if not args.skip_eval:  # references: the SavedModel (fixed at the export's stride, 8) and the weights file
        evaluate("saved_model", [f"--saved_model={saved_model}", "--output_stride=0"])
        evaluate("checkpoint", [f"--checkpoint={args.model}"])
    save(results, out)
    print(table(results))


def official_comparison(results: dict, out: str, args, log) -> None:
    """Exports the official dm05 weights at 257x257 (logits out, as the official file) and times
    both files in turn, --official_rounds times over the images, with 1 and 2 threads."""
    ours = os.path.join(out, "dm05_257_ours.tflite")
    run(command("export.export_tflite", "--experiment=voc_v3_mnv2_dm05_official", f"--checkpoint={OFFICIAL}",
                "--override=eval.pad_to_size=(0,0)", f"--output={ours}", "--input_size=257x257", "--outputs=logits",
                "--overwrite"), log)
    results["official"] = {"official": {"bytes": os.path.getsize(OFFICIAL)}, "ours": {"bytes": os.path.getsize(ours)}}
    pair = {"official": ("official", OFFICIAL), "ours": ("tflite", ours)}
    rounds = argparse.Namespace(**{**vars(args), "rounds": args.official_rounds})
    for threads in (1, 2):
        log(f"official vs ours, {threads} thread(s), 257x257, {args.latency_images} images x {args.official_rounds} rounds")
        for name, timing in latency(pair, threads, rounds, size=(257, 257)).items():
            results["official"][name][f"latency_{threads}"] = timing


def save(results: dict, out: str, name: str = "results.json") -> None:
    with open(os.path.join(out, name), "w") as f:
        json.dump(results, f, indent=1)


def table(results: dict) -> str:
    rows = ["| model | bytes | size vs float32 | val mIoU | 1 thread ms (vs SavedModel) | 2 threads ms (vs SavedModel) |",
            "|---|---|---|---|---|---|"]
    precisions = results["precisions"]
    base = precisions.get("float32", {}).get("bytes")
    for name, r in precisions.items():
        cells = [name, str(r.get("bytes", "")), f"1/{base / r['bytes']:.2f}" if r.get("bytes") else "",
                 f"{100 * r['miou']:.2f}" if "miou" in r else ""]
        for threads in (1, 2):
            timing = r.get(f"latency_{threads}")
            reference = precisions["saved_model"].get(f"latency_{threads}")
            cells.append(f"{timing['median_ms']:.1f} ({timing['median_ms'] / reference['median_ms']:.2f}x)" if timing else "")
        rows.append("| " + " | ".join(cells) + " |")
    if results["official"]:
        rows += ["", "| 257x257 file | bytes | 1 thread ms | 2 threads ms |", "|---|---|---|---|"]
    for name, r in results["official"].items():
        rows.append(f"| {name} | {r['bytes']} | {r['latency_1']['median_ms']:.1f} | {r['latency_2']['median_ms']:.1f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
