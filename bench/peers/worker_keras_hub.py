"""Peers benchmark worker: keras-hub's DeepLabV3 (`DeepLabV3ImageSegmenter`) on keras-hub's
ResNet-50 (v1, bottleneck blocks, 7x7 stem), random weights, ASPP rates 6/12/18, 21 classes.

keras-hub's DeepLabV3Backbone has no output stride 16: ASPP runs on "P5" (stride 32) and is
upsampled by fixed factors (8 then 4), so a 513 input gives 544x544 logits; they are resized to
the input size here, as for the other peers. Runs in its own virtualenv (keras-hub + TF)."""

import os

from bench.peers.protocol import serve


def build(config):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import keras_hub

    from bench.peers import tf_common

    policy = tf_common.set_precision(config, keras)
    keras.utils.set_random_seed(config["seed"])
    rates = [int(r) for r in config.get("rates", (6, 12, 18))]
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[3, 4, 6, 3],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="bottleneck_block",
        use_pre_activation=False,
    )
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder, spatial_pyramid_pooling_key="P5", upsampling_size=8, dilation_rates=rates
    )
    model = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=config["num_classes"])
    optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    run = tf_common.make_step(model, config, optimizer)
    info = dict(
        tf_common.tf_info(),
        dtype_policy=policy,
        version=f"keras-hub {keras_hub.__version__}",
        keras=keras.__version__,
        model=f"DeepLabV3 ResNet-50 OS32 (P5; keras-hub has no OS16) rates {rates}",
        parameters=tf_common.count_parameters(model),
        flops=tf_common.forward_gflops(model, config),
    )
    return run, info


if __name__ == "__main__":
    serve(build)
