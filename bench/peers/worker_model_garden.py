"""Peers benchmark worker: TF Model Garden's DeepLabV3 (`official.vision`): DilatedResNet-50 at
output stride 16 with multi-grid 1/2/4, ASPP (level 4, rates 6/12/18, image pooling), a
SegmentationHead without extra convs, random weights, 21 classes. This is the model of Model
Garden's `seg_deeplabv3_pascal` experiment at ResNet-50, except for two settings chosen to match
deeplab-tf: the 7x7 stem (`stem_type="v0"`; the experiment uses the deep "v1" stem) and rates
6/12/18 (the experiment keeps 12/24/36 at OS16, see its own comment). Both can be set with the
config keys `stem_type` and `rates`. Logits (stride 16) are resized to the input size.
Runs in its own virtualenv (tf-models-official + tf_keras)."""

from bench.peers.protocol import serve


class _Logits:
    """The SegmentationModel's 'logits' output as a callable with trainable_variables."""

    def __init__(self, model):
        self.model = model

    def __call__(self, images, training=False):
        outputs = self.model(images, training=training)
        return outputs["logits"] if isinstance(outputs, dict) else outputs

    @property
    def trainable_variables(self):
        return self.model.trainable_variables


def build(config):
    import importlib.metadata

    import tensorflow as tf
    import tf_keras
    from official.vision.modeling import segmentation_model
    from official.vision.modeling.backbones import resnet_deeplab
    from official.vision.modeling.decoders import aspp
    from official.vision.modeling.heads import segmentation_heads

    from bench.peers import tf_common

    policy = tf_common.set_precision(config, tf_keras)
    tf_keras.utils.set_random_seed(config["seed"])
    rates = [int(r) for r in config.get("rates", (6, 12, 18))]
    stem_type = config.get("stem_type", "v0")
    momentum, epsilon = 0.9997, 1e-3
    backbone = resnet_deeplab.DilatedResNet(
        model_id=50,
        output_stride=16,
        input_specs=tf_keras.layers.InputSpec(shape=[None, None, None, 3]),
        stem_type=stem_type,
        multigrid=[1, 2, 4],
        norm_momentum=momentum,
        norm_epsilon=epsilon,
    )
    decoder = aspp.ASPP(level=4, dilation_rates=rates, num_filters=256, norm_momentum=momentum, norm_epsilon=epsilon)
    head = segmentation_heads.SegmentationHead(
        num_classes=config["num_classes"], level=4, num_convs=0, norm_momentum=momentum, norm_epsilon=epsilon
    )
    model = _Logits(segmentation_model.SegmentationModel(backbone=backbone, decoder=decoder, head=head))
    model(tf.zeros([1, 65, 65, 3]), training=False)  # creates the variables
    optimizer = tf_keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    run = tf_common.make_step(model, config, optimizer)
    info = dict(
        tf_common.tf_info(),
        dtype_policy=policy,
        version=f"tf-models-official {importlib.metadata.version('tf-models-official')}",
        tf_keras=tf_keras.__version__,
        model=f"DeepLabV3 DilatedResNet-50 OS16 stem {stem_type} multi-grid [1, 2, 4] rates {rates}",
        parameters=tf_common.count_parameters(model),
        flops=tf_common.forward_gflops(model, config),
    )
    return run, info


if __name__ == "__main__":
    serve(build)
