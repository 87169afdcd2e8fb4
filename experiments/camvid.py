"""CamVid (SegNet's 11-class split, 367 train / 101 val, 360x480) experiments.

`camvid_mnv2_v3plus`: DeepLabv3+ with a MobileNetV2 encoder at output stride 16, trained from
scratch (no ImageNet weights can be downloaded here; pass `model.backbone_weights=PATH` to start
from the Keras Applications file). Data: the `camvid` TFDS builder, prepared on first use from a
folder in the SegNet layout (`train.txt`, `val.txt` listing `image label` pairs) given as
`data.data_dir`; void (11) ignored.
Command: `python -m deeplab_tf.train --experiment=camvid_mnv2_v3plus --model_dir=runs/camvid
--override=data.data_dir=/path/to/camvid`.
"""

from deeplab_tf.config import DataConfig, Experiment, ModelConfig, TrainConfig
from experiments.registry import register_experiment


@register_experiment("camvid_mnv2_v3plus")
def camvid_mnv2_v3plus() -> Experiment:
    return Experiment(
        name="camvid_mnv2_v3plus",
        description="DeepLabv3+ MobileNetV2 OS16 on CamVid 11 classes, from scratch",
        model=ModelConfig(arch="deeplab_v3_plus", backbone="mobilenet_v2", output_stride=16),
        data=DataConfig(
            dataset="camvid",
            crop_size=(321, 321),
            min_scale=0.5,
            max_scale=2.0,
        ),
        train=TrainConfig(steps=20000, batch_size=8, base_learning_rate=0.01, weight_decay=4e-5),
    )
