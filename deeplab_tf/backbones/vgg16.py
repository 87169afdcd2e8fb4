"""VGG-16 with DeepLab's pooling (DeepLab v1 / v2, arXiv:1412.7062 Sec. 3.1, arXiv:1606.00915).

DeepLab's released VGG-16 (the DeepLab-LargeFOV prototxt) makes every max pooling a 3x3 window
with padding 1: pool1-3 keep stride 2 and pool4-5 get stride 1. `deeplab_pooling` applies the
3x3 windows ("same" padding, stride 2) to Keras' `VGG16`, whose pools are 2x2 "valid";
`output_stride.dilate_to_output_stride` then removes the strides of pool4 / pool5 and dilates
conv5 by 2, as for any backbone. Pooling has no weights, so the ImageNet weights are unchanged.

Why 3x3 windows also for pool1-3: a symmetric window keeps every feature centred on an input
pixel (position i of a stride-8 map on input pixel 8i, for sizes 8k + 1 such as DeepLab's 321
and 513, where "same" pads one zero on each side like Caffe's `pad: 1`), and a stride-8 map has
ceil(size / 8) positions (41 for 321, as in the papers). Keras' 2x2 windows would shift each
level by half a pixel and floor the sizes instead.
"""

import keras

from deeplab_tf.backbones.output_stride import copy_weights_by_name


def _deeplab_pool(layer):
    """Returns a fresh copy of `layer`; a max pooling becomes 3x3, "same", same stride."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.MaxPooling2D):
        config.update(pool_size=(3, 3), padding="same")
    return layer.__class__.from_config(config)


def deeplab_pooling(model):
    """Returns a copy of the VGG `model` whose max poolings are 3x3 windows with "same" padding.

    Args:
        model: functional `keras.Model` made of Keras `VGG16` layers (possibly cut at several
            feature layers).

    Returns:
        New `keras.Model` with the inputs, outputs, layer names and weights of `model`; each
        `MaxPooling2D` keeps its stride but pools a 3x3 window with "same" padding.
    """
    clone = keras.models.clone_model(model, clone_function=_deeplab_pool)
    copy_weights_by_name(model, clone)
    return clone
