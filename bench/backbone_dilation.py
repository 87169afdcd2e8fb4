"""Whole-model training step: dilated backbone convolutions as Keras layers vs deeplab-tf's.

    python -m bench.backbone_dilation [--models=resnet50_v3,mobilenet_v2_v3plus] [--size=321]
        [--batch=4] [--repeats=7]

Keras' `Conv2D(dilation_rate=r)` runs through `tf.nn.convolution`, which wraps the convolution
in SpaceToBatchND / BatchToSpaceND; deeplab-tf's `AtrousConv2D` ("native") calls
`tf.nn.conv2d(dilations=r)` directly. The backbones re-purposed to output stride 8/16 used to
keep the Keras layers. For each model this builds deeplab-tf's version and a copy whose atrous
layers (backbone and head) are turned into Keras `Conv2D` / `DepthwiseConv2D` with the same weights, checks
the two give the same logits, then times one SGD step (forward, backward, update) of each,
alternating A B A B..., and prints min / median / max seconds and the ratio of medians.
"""

import argparse
import time

import numpy as np

from bench import provenance


MODELS = {
    "resnet50_v3": dict(arch="deeplab_v3", backbone="resnet50", output_stride=16, multi_grid=(1, 2, 4)),
    "resnet50_v3_os8": dict(arch="deeplab_v3", backbone="resnet50", output_stride=8, multi_grid=(1, 2, 4)),
    "mobilenet_v2_v3plus": dict(arch="deeplab_v3_plus", backbone="mobilenet_v2", output_stride=16,
                                aspp_filters=128, decoder_filters=128),
}


def keras_layers_copy(model):
    """Returns a clone of `model` whose AtrousConv2D / AtrousDepthwiseConv2D layers are Keras'
    Conv2D / DepthwiseConv2D with dilation_rate (same names and weights)."""
    import keras

    from deeplab_tf.layers import AtrousConv2D, AtrousDepthwiseConv2D

    def clone(layer):
        if isinstance(layer, (AtrousConv2D, AtrousDepthwiseConv2D)):
            common = dict(kernel_size=layer.kernel_size, padding=layer.padding, dilation_rate=layer.rate,
                          use_bias=layer.use_bias, activation=layer.activation, name=layer.name)
            if isinstance(layer, AtrousConv2D):
                return keras.layers.Conv2D(layer.filters, **common)
            return keras.layers.DepthwiseConv2D(depth_multiplier=layer.depth_multiplier, **common)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def train_step(model, tf, keras):
    optimizer = keras.optimizers.SGD(0.001, momentum=0.9)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet50_v3,mobilenet_v2_v3plus")
    parser.add_argument("--size", type=int, default=321)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import keras
    import tensorflow as tf

    from deeplab_tf.config import ModelConfig
    from deeplab_tf.models.builder import build_model

    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(args.batch, args.size, args.size, 3)).astype("float32"))
    labels = tf.constant(rng.integers(0, 21, size=(args.batch, args.size, args.size)).astype("int32"))
    print(provenance.describe())
    print(f"batch {args.batch}, {args.size}x{args.size}, SGD step")
    print("| model | Keras dilated layers, s (min/med/max) | deeplab-tf atrous layers, s (min/med/max) | speed-up |")
    print("|---|---|---|---|")
    for name in args.models.split(","):
        ours = build_model(ModelConfig(**MODELS[name]), 21).model
        theirs = keras_layers_copy(ours)
        difference = np.abs(ours(images[:1]) - theirs(images[:1])).max()
        scale = np.abs(ours(images[:1])).max()
        if difference > 1e-4 * scale:
            raise SystemExit(f"{name}: logits differ by {difference} (scale {scale})")
        steps = {"keras": train_step(theirs, tf, keras), "ours": train_step(ours, tf, keras)}
        times = {key: [] for key in steps}
        for step in steps.values():
            step(images, labels)
        for _ in range(args.repeats):
            for key, step in steps.items():
                start = time.perf_counter()
                float(step(images, labels))
                times[key].append(time.perf_counter() - start)
        cells = {k: f"{min(v):.3f} / {np.median(v):.3f} / {max(v):.3f}" for k, v in times.items()}
        print(f"| {name} | {cells['keras']} | {cells['ours']} | {np.median(times['keras']) / np.median(times['ours']):.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
