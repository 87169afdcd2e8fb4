"""Searching CRF parameters for a trained model: its probabilities on held-out images, the
coarse-to-fine search (`deeplab_tf.crf.search`), and the result written next to the model."""

import os

import tensorflow as tf

from deeplab_tf.assembly import assemble
from deeplab_tf.checkpoints import resolve_checkpoint, restore_model
from deeplab_tf.crf.params import PARAMS_FILE, save_params
from deeplab_tf.crf.search import search_crf_params


def model_probabilities(parts, split: str, num_images: int) -> tuple:
    """Returns (images, probabilities, labels): lists of uint8 [H, W, 3], float32 [H, W, C] (the
    model's softmax) and uint8 [H, W] for the first `num_images` examples of `split`."""

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
    Returns the JSON content written.

    Raises FileNotFoundError / ValueError when there is no matching checkpoint, ValueError for
    num_images < 1 or an empty split.
    """
    if num_images < 1:
        raise ValueError(f"--num_images must be >= 1, got {num_images}")
    split = split or experiment.data.eval_split
    checkpoint = resolve_checkpoint(checkpoint or model_dir)  # fails before the model is built
    parts = assemble(experiment)
    restore_model(parts.model, checkpoint)
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
