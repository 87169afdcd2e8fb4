"""Peers benchmark worker: deeplab-tf's DeepLabv3 ResNet-50 (experiment `voc_v3_r50_os16`: output
stride 16, ASPP rates 6/12/18, multi-grid 1/2/4, 21 classes), random weights. Runs in the repo's
own .venv. Config keys beyond the common ones: `override` (e.g. "model.atrous_implementation=auto"),
`experiment`, `jit_compile`."""

import dataclasses
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from protocol import serve  # noqa: E402


def build(config):
    import keras
    import tensorflow as tf

    import deeplab_tf
    import experiments
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.losses import masked_sparse_cross_entropy
    from deeplab_tf.models import build_model

    import tf_common

    experiment = experiments.get_experiment(config.get("experiment") or "voc_v3_r50_os16")
    if config.get("override"):
        experiment = apply_overrides(experiment, config["override"])
    keras.utils.set_random_seed(config["seed"])
    model = build_model(experiment.model, config["num_classes"]).model
    optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    run = tf_common.make_step(
        model,
        config,
        optimizer,
        loss_fn=lambda y, logits: masked_sparse_cross_entropy(y, logits),
        jit_compile=bool(config.get("jit_compile")),
    )
    m = experiment.model
    counted = model
    if m.atrous_implementation != "native":
        # Count the FLOPs of the dense (native) convolution, so that the figure does not depend
        # on the implementation (shifted_gemm skips the taps that only see padding).
        counted = build_model(dataclasses.replace(m, atrous_implementation="native"), config["num_classes"]).model
    info = dict(
        tf_common.tf_info(),
        version=f"deeplab-tf {deeplab_tf.__version__}",
        keras=keras.__version__,
        model=(f"{m.arch} {m.backbone} OS{m.output_stride} rates {list(m.atrous_rates)} "
               f"multi-grid {list(m.multi_grid)} atrous={m.atrous_implementation}"),
        parameters=tf_common.count_parameters(model),
        flops=tf_common.forward_gflops(counted, config),
    )
    return run, info


if __name__ == "__main__":
    serve(build)
