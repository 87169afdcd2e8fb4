"""Multi-scale inputs with max fusion (DeepLab v2, arXiv:1606.00915 Sec. 3.2 "MSC").

The same network (shared weights) runs on the image resized by each scale; each score map is
resized bilinearly to the input resolution and the maps are fused by a per-pixel maximum.
Training puts the loss on every scale's scores and on the fused scores, as in the paper.
"""

import keras

from deeplab_tf.layers.resize import ResizeByFactor, ResizeToMatch


def build_multi_scale(network: keras.Model, scales: tuple) -> tuple[keras.Model, keras.Model]:
    """Wraps `network` (images [B,H,W,3] -> logits [B,H,W,C]) for multi-scale inputs.

    Returns (fused, training): `fused` maps images to the per-pixel max over scales of the
    logits, float32 [B, H, W, C]; `training` maps images to the list [fused, logits at
    scales[0], logits at scales[1], ...], each [B, H, W, C], for the MSC loss. Both share
    `network`'s weights. Raises ValueError for fewer than two scales or a scale <= 0.
    """
    if len(scales) < 2 or any(s <= 0 for s in scales):
        raise ValueError(f"model.msc_scales={tuple(scales)} must hold at least two positive scales")
    images = keras.Input(shape=(None, None, 3), name="images")
    per_scale = []
    for scale in scales:
        if scale == 1:
            per_scale.append(network(images))
            continue
        scaled = ResizeByFactor(scale, name=f"msc_input_{scale:g}")(images)
        per_scale.append(ResizeToMatch(name=f"msc_scores_{scale:g}")([network(scaled), images]))
    fused = keras.layers.Maximum(name="msc_max")(per_scale)
    return (
        keras.Model(images, fused, name=f"{network.name}_msc"),
        keras.Model(images, [fused, *per_scale], name=f"{network.name}_msc_training"),
    )
