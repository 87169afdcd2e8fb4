"""The model an exporter serves: the experiment's model restored from a checkpoint, batch norms
folded. `export.export_saved_model` and `export.export_tflite` both build it here, so the two
exports cannot disagree with each other or with training."""

from typing import Callable, NamedTuple

import keras


class InferenceModel(NamedTuple):
    """What `build_inference_model` returns.

    `model`: normalised float32 images [B, H, W, 3] -> logits [B, H, W, C], batch norms folded
    where asked, convolution weights in the compute dtype under a mixed policy. `normalize`:
    float32 pixels 0..255 -> model input. `info`: the dataset's classes, palette and ignore label.
    `checkpoint`: the checkpoint prefix (or file, or what was imported) restored.
    `batch_norms_folded`: how many batch norms were folded into their convolutions.
    """

    model: keras.Model
    normalize: Callable
    info: object
    checkpoint: str
    batch_norms_folded: int


def build_inference_model(experiment, checkpoint: str, output_stride: int = 0, dtype_policy: str = "float32",
                          fold_batch_norm: bool = True, log=print) -> InferenceModel:
    """Returns the `InferenceModel` of `experiment` (`deeplab_tf.assembly.assemble`, at
    `output_stride` if > 0, under the Keras `dtype_policy`) restored from `checkpoint` (a run,
    a checkpoint, a weights file or zoo name, a published model:
    `deeplab_tf.training.checkpoints.restore_model`), in its served form (`served_form`)."""
    from deeplab_tf.assembly import assemble
    from deeplab_tf.training.checkpoints import restore_model

    parts = assemble(experiment, output_stride=output_stride, dtype_policy=dtype_policy, with_data=False)
    prefix = restore_model(parts.model, checkpoint)
    model, folded_count = served_form(parts.model, fold_batch_norm, log=log)
    return InferenceModel(model, parts.normalize, parts.info, prefix, folded_count)


def served_form(model: keras.Model, fold_batch_norm: bool = True, log=None) -> tuple[keras.Model, int]:
    """Returns `(served, folded)`: `model` as the exporters serve it, and how many batch norms
    were folded. With `fold_batch_norm`, every batch norm directly after a convolution is merged
    into it (`deeplab_tf.models.fold_batch_norm`); under a mixed policy (e.g. "mixed_bfloat16")
    the convolutions then hold their weights in the compute dtype
    (`deeplab_tf.models.compute_dtype_weights`): the same outputs, no per-call casts. `model` is
    not changed; `served` is `model` itself when neither applies."""
    from deeplab_tf.models.compute_dtype_weights import store_weights_in_compute_dtype
    from deeplab_tf.models.fold_batch_norm import fold_batch_norm as fold, foldable_pairs

    folded_count = len(foldable_pairs(model)) if fold_batch_norm else 0
    if folded_count:  # e.g. VGG-16 models have no batch norm: no need for a copy
        model = fold(model, log=log)
    return store_weights_in_compute_dtype(model, log=log), folded_count


def parse_input_size(text: str) -> tuple[int, int] | None:
    """Returns (height, width) of the --input_size text "HxW", None for ""; ValueError naming the
    flag when it is not HxW."""
    if not text:
        return None
    try:
        return tuple(int(side) for side in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--input_size={text!r} is not HxW, e.g. 513x513") from None
