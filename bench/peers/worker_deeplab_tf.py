"""Peers benchmark worker: deeplab-tf's DeepLabv3 ResNet-50 (experiment `voc_v3_r50_os16`: output
stride 16, ASPP rates 6/12/18, multi-grid 1/2/4, 21 classes), random weights. Runs in the repo's
own .venv. Config keys beyond the common ones: `override` (e.g. "model.atrous_implementation=native"),
`experiment`, `jit_compile`, `fold_batch_norm` (inference only, default true: the batch norms merged
into the convolutions and, in bfloat16, the convolution weights stored in bfloat16: the exporters'
`export.inference_model.served_form`)."""

from bench.peers.protocol import serve


def build(config):
    import keras
    import tensorflow as tf

    import deeplab_tf
    import experiments
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.layers import autotune
    from deeplab_tf.training.losses import masked_sparse_cross_entropy
    from deeplab_tf.training.momentum_sgd import MomentumSGD
    from deeplab_tf.models import build_model

    from bench.peers import tf_common
    from deeplab_tf.onednn_weight_cache import refuse_for_training
    from export.inference_model import served_form

    if config["mode"] == "training":
        refuse_for_training()  # from the user's environment: the step would keep its first weights

    experiment = experiments.get_experiment(config.get("experiment") or "voc_v3_r50_os16")
    if config.get("override"):
        experiment = apply_overrides(experiment, config["override"])
    policy = tf_common.set_precision(config, keras)
    keras.utils.set_random_seed(config["seed"])
    model = build_model(experiment.model, config["num_classes"]).model
    folded = config["mode"] == "inference" and config.get("fold_batch_norm", True)
    if folded:
        model, _ = served_form(model)
    optimizer = MomentumSGD(learning_rate=1e-3, momentum=0.9)  # the trainer's
    run = tf_common.make_step(
        model,
        config,
        optimizer,
        loss_fn=lambda y, logits: masked_sparse_cross_entropy(y, logits),
        jit_compile=bool(config.get("jit_compile")),
        trace_scope=lambda: autotune.compiled_by_xla(bool(config.get("jit_compile"))),
    )
    m = experiment.model
    # Count the FLOPs of the dense (native) convolutions, so that the figure does not depend on
    # the implementation (shifted_gemm skips the taps that only see padding): the atrous layers
    # are traced as "native" for the count (no second model, which would add to the peak RSS).
    atrous = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if hasattr(layer, "implementation") and hasattr(layer, "rate")]
    chosen = [layer.implementation for layer in atrous]
    for layer in atrous:
        layer.implementation = "native"
    flops = tf_common.forward_gflops(model, config)
    for layer, implementation in zip(atrous, chosen):
        layer.implementation = implementation
    info = dict(
        tf_common.tf_info(),
        dtype_policy=policy,
        version=f"deeplab-tf {deeplab_tf.__version__}",
        keras=keras.__version__,
        model=(f"{m.arch} {m.backbone} OS{m.output_stride} rates {list(m.atrous_rates)} "
               f"multi-grid {list(m.multi_grid)} atrous={m.atrous_implementation}"
               f"{' batch norm folded' if folded else ''}"),
        parameters=tf_common.count_parameters(model),
        flops=flops,
    )
    return run, info


if __name__ == "__main__":
    serve(build)
