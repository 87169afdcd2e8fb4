"""Searches the dense-CRF parameters for a trained model and writes MODEL_DIR/crf_params.json.

    python -m deeplab_tf.crf_search --experiment=camvid_mnv2_v3plus --model_dir=runs/camvid \\
        [--split=val] [--num_images=100] [--processes=2]

The experiment's model is restored from --model_dir, its softmax probabilities on the first
--num_images images of --split form the held-out subset, and `deeplab_tf.crf.search` runs
DeepLab v2's coarse-to-fine grid over them with pydensecrf in parallel processes. Load the
result with `deeplab_tf.crf.load_params(MODEL_DIR + "/crf_params.json")`.
"""

import os

from absl import flags

from deeplab_tf.cli import define_experiment_flags, resolve_experiment, run

define_experiment_flags()
flags.DEFINE_string("model_dir", None, "Training folder: its latest checkpoint is used and the result written there.")
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix; defaults to the latest in --model_dir.")
flags.DEFINE_string("split", None, "Split holding the held-out images; defaults to the experiment's data.eval_split.")
flags.DEFINE_integer("num_images", 100, "Number of images (the first ones of --split) to search on; DeepLab used 100.")
flags.DEFINE_integer("processes", None, "Worker processes; defaults to one per CPU core.")
flags.DEFINE_string("output", None, "Where to write the JSON result; defaults to MODEL_DIR/crf_params.json.")
flags.mark_flag_as_required("model_dir")


def model_probabilities(parts, split: str, num_images: int) -> tuple:
    """Returns (images, probabilities, labels): lists of uint8 [H, W, 3], float32 [H, W, C] (the
    model's softmax) and uint8 [H, W] for the first `num_images` examples of `split`."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def predict(image):
        logits = parts.model(parts.normalize(tf.cast(image, tf.float32))[None], training=False)
        return tf.nn.softmax(tf.cast(logits[0], tf.float32))

    images, probabilities, labels = [], [], []
    for example in parts.source.examples(split).take(num_images):
        images.append(example["image"].numpy())
        labels.append(example["label"].numpy())
        probabilities.append(predict(example["image"]).numpy())
    if not images:
        raise ValueError(f"Split {split!r} of {parts.info.name} has no examples")
    return images, probabilities, labels


def search_model(experiment, model_dir: str, checkpoint=None, split=None, num_images=100, processes=None,
                 output=None, progress=True, log=print) -> dict:
    """Restores `experiment`'s model, searches CRF parameters on its held-out probabilities and
    writes them with the search summary to `output` (default MODEL_DIR/crf_params.json).
    Returns the JSON content written."""
    from deeplab_tf.assembly import assemble
    from deeplab_tf.checkpoints import restore_model
    from deeplab_tf.crf import PARAMS_FILE, save_params
    from deeplab_tf.crf.search import search_crf_params

    if num_images < 1:
        raise ValueError(f"--num_images must be >= 1, got {num_images}")
    split = split or experiment.data.eval_split
    parts = assemble(experiment)
    checkpoint = restore_model(parts.model, checkpoint or model_dir)
    images, probabilities, labels = model_probabilities(parts, split, num_images)
    log(f"Searching CRF parameters on {len(images)} images of {split!r} ({checkpoint})")
    result = search_crf_params(images, probabilities, labels, parts.info.num_classes, parts.info.ignore_label,
                               processes=processes, progress=progress)
    summary = dict(
        miou=result.best_miou, unary_miou=result.unary_miou, experiment=experiment.name, checkpoint=checkpoint,
        split=split, num_images=len(images), trials=[dict(p.to_dict(), miou=m) for p, m in result.trials],
    )
    output = output or os.path.join(model_dir, PARAMS_FILE)
    save_params(result.best, output, **summary)
    log(f"mIoU {result.unary_miou:.4f} without CRF, {result.best_miou:.4f} with {result.best}")
    log(f"Wrote {output}")
    return dict(params=result.best.to_dict(), **summary)


def main(argv):
    del argv
    values = flags.FLAGS
    search_model(resolve_experiment(), values.model_dir, values.checkpoint, values.split, values.num_images,
                 values.processes, values.output)


if __name__ == "__main__":
    run(main)
