"""Test-time inference: multi-scale + flip fusion and tiled (sliding-window) prediction."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.evaluation.inference import (distance_to_seams, keras_scorer, multi_scale, padded, tiled, window_spans,
                                             window_starts)
from deeplab_tf.layers.resize import ResizeToMatch

NUM_CLASSES = 3


def tiny_model(symmetric: bool, seed: int = 0) -> keras.Model:
    """Two 3x3 convs (receptive radius 2 pixels). With `symmetric`, every kernel is mirror
    symmetric left-right, so the model commutes with a horizontal flip."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((None, None, 3))
    first = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
    second = keras.layers.Conv2D(NUM_CLASSES, 3, padding="same")
    model = keras.Model(inputs, second(first(inputs)))
    for layer in (first, second):
        kernel, bias = layer.get_weights()
        kernel = rng.normal(size=kernel.shape).astype(np.float32)
        if symmetric:
            kernel = (kernel + kernel[:, ::-1]) / 2
        layer.set_weights([kernel, rng.normal(size=bias.shape).astype(np.float32)])
    return model


def scorer_of(model):
    return keras_scorer(model, lambda pixels: pixels / 127.5 - 1.0)


def pixels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_flipped_pass_changes_nothing_on_a_flip_equivariant_model():
    scorer = scorer_of(tiny_model(symmetric=True))
    images = pixels((2, 20, 27, 3))
    plain = scorer(images).numpy()
    for fusion in ("mean", "max"):
        np.testing.assert_allclose(multi_scale(scorer, (1.0,), flip=True, fusion=fusion)(images), plain, atol=1e-5)
    # A model that is not flip-equivariant does change: the test above can fail.
    other = scorer_of(tiny_model(symmetric=False))
    assert np.abs(multi_scale(other, (1.0,), flip=True)(images) - other(images).numpy()).max() > 1e-3


def test_multi_scale_fusion_mean_and_max():
    scorer = scorer_of(tiny_model(symmetric=False))
    images = pixels((1, 24, 32, 3))
    assert multi_scale(scorer, (1.0,)) is scorer
    mean = multi_scale(scorer, (0.5, 1.0, 1.5), fusion="mean")(images).numpy()
    small = tf.image.resize(scorer(tf.image.resize(images, (12, 16))), (24, 32)).numpy()  # float pixels
    large = tf.image.resize(scorer(tf.image.resize(images, (36, 48))), (24, 32)).numpy()
    np.testing.assert_allclose(mean, (small + scorer(images).numpy() + large) / 3, atol=1e-5)
    fused_max = multi_scale(scorer, (0.5, 1.0, 1.5), fusion="max")(images).numpy()
    maximum = np.maximum(np.maximum(small, scorer(images).numpy()), large)
    np.testing.assert_allclose(fused_max, maximum / maximum.sum(-1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(mean.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="Unknown fusion"):
        multi_scale(scorer, (1.0,), fusion="median")


def test_window_starts_cover_the_length_and_stay_inside():
    assert window_starts(50, 64, 16) == [0]
    assert window_starts(100, 32, 8) == [0, 24, 48, 68]
    assert window_starts(64, 32, 0) == [0, 32]


def test_window_spans_start_on_the_output_stride_grid():
    assert window_starts(1024, 512, 128, stride=8) == [0, 384, 512]
    assert window_starts(100, 28, 8, stride=4) == [0, 20, 40, 60, 72]  # last start rounded up, window cut
    assert window_spans(100, 30, 8, stride=4) == [(0, 28), (20, 48), (40, 68), (60, 88), (72, 100)]
    assert window_spans(2048, 513, 128, stride=8) == [(0, 512), (384, 896), (768, 1280), (1152, 1664), (1536, 2048)]
    assert window_spans(513, 513, 128, stride=8) == [(0, 513)]  # no larger than the tile: whole
    assert window_spans(100, 32, 8) == [(0, 32), (24, 56), (48, 80), (68, 100)]
    scorer = scorer_of(tiny_model(symmetric=False))
    with pytest.raises(ValueError, match="multiple of stride 8"):
        tiled(scorer, (17, 17), 16, stride=8)


def test_tiling_equals_whole_image_when_the_window_covers_it():
    scorer = scorer_of(tiny_model(symmetric=False))
    images = pixels((2, 30, 41, 3))
    np.testing.assert_array_equal(tiled(scorer, (30, 41), 8)(images), scorer(images).numpy())
    np.testing.assert_array_equal(tiled(scorer, (64, 64), 8)(images), scorer(images).numpy())
    assert tiled(scorer, (0, 0)) is scorer
    with pytest.raises(ValueError, match="smaller than the window"):
        tiled(scorer, (16, 16), 16)


def test_tiling_agrees_with_whole_image_away_from_window_seams():
    scorer = scorer_of(tiny_model(symmetric=False))
    images = pixels((1, 50, 70, 3))
    tile, overlap, radius = (24, 32), 8, 2  # two 3x3 convs see 2 pixels around
    whole = scorer(images).numpy()
    tiled_scores = tiled(scorer, tile, overlap)(images)
    near_seam = np.zeros((50, 70), bool)  # within `radius` of a window edge that is inside the image
    for axis, (length, window) in enumerate(((50, tile[0]), (70, tile[1]))):
        for start in window_starts(length, window, overlap):
            for edge in (start, start + window):
                if 0 < edge < length:
                    index = [slice(None), slice(None)]
                    index[axis] = slice(max(edge - radius, 0), edge + radius)
                    near_seam[tuple(index)] = True
    difference = np.abs(tiled_scores - whole).max(axis=-1)[0]
    assert difference[~near_seam].max() < 1e-5
    assert difference[near_seam].max() > 1e-3  # the seams really differ: the check above has teeth
    agreement = np.mean(np.argmax(tiled_scores, -1) == np.argmax(whole, -1))
    assert agreement > 0.9


def strided_model(seed: int = 0) -> keras.Model:
    """Output stride 4, like DeepLab without image pooling: two 3x3 stride-2 "same" convs, a 3x3
    conv at rate 2, bilinear upsampling of the logits to the input size. Receptive-field radius:
    1 + 2 + 8 feature-grid pixels plus the 4-pixel upsampling and grid phase, under 16 pixels."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((None, None, 3))
    layers = [keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
              keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
              keras.layers.Conv2D(NUM_CLASSES, 3, dilation_rate=2, padding="same")]
    x = inputs
    for layer in layers:
        x = layer(x)
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(size=kernel.shape).astype(np.float32) / 3,
                           rng.normal(size=bias.shape).astype(np.float32) / 3])
    return keras.Model(inputs, ResizeToMatch()([x, inputs]))


def logits_scorer(model):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def score(pixels):
        return model(tf.cast(pixels, tf.float32) / 127.5 - 1.0, training=False)

    return score


def test_stride_aligned_tiling_equals_whole_image_logits_beyond_the_receptive_field():
    scorer = logits_scorer(strided_model())
    images = pixels((1, 64, 160, 3))  # sides multiples of the output stride 4
    whole = scorer(images).numpy()
    tile, overlap, radius = (42, 66), 8, 16
    aligned = window_spans(64, 42, overlap, 4) + window_spans(160, 66, overlap, 4)
    assert all(start % 4 == 0 for start, _ in aligned)
    assert {stop - start for start, stop in aligned} == {40, 64}  # 42, 66 rounded down to multiples of 4
    difference = np.abs(tiled(scorer, tile, overlap, stride=4)(images).numpy() - whole).max(axis=-1)[0]
    distance = distance_to_seams((64, 160), tile, overlap, 4)
    assert (distance >= radius).mean() > 0.4
    assert difference[distance >= radius].max() < 1e-4
    assert difference[distance < 2].max() > 1e-3  # the seams really differ: the check above has teeth
    # Windows off the stride grid (stride 1: offsets 34 / 58, sizes 42 / 66) shift the feature grid,
    # so the same model differs away from the seams too.
    unaligned = np.abs(tiled(scorer, tile, overlap)(images).numpy() - whole).max(axis=-1)[0]
    far = distance_to_seams((64, 160), tile, overlap, 1) >= radius
    assert far.mean() > 0.2 and unaligned[far].max() > 1e-2


def _seen_inputs(seen):
    """Returns a scorer recording each input and returning it, float32, as its "probabilities"."""
    def score(pixels):
        seen.append(np.asarray(pixels))
        return tf.cast(pixels, tf.float32)
    return score


@pytest.mark.parametrize("shape, padded_shape", [((5, 7), (9, 8)), ((9, 11), (9, 11)), ((3, 10), (9, 10))])
def test_padded_pads_bottom_right_with_the_pixel_and_crops_back(shape, padded_shape):
    image = pixels((2, *shape, 3))
    seen = []
    result = padded(_seen_inputs(seen), (9, 8), (127.5, 0.0, 255.0))(image)
    (inner,) = seen
    assert inner.shape == (2, *padded_shape, 3)
    np.testing.assert_array_equal(inner[:, :shape[0], :shape[1]], image)
    below_or_right = np.ones(padded_shape, bool)
    below_or_right[:shape[0], :shape[1]] = False
    np.testing.assert_array_equal(inner[:, below_or_right], np.broadcast_to([127.5, 0.0, 255.0], inner[:, below_or_right].shape))
    np.testing.assert_array_equal(result, image.astype(np.float32))


def test_padded_works_at_unknown_sizes_and_is_the_scorer_itself_without_a_size():
    scorer = scorer_of(tiny_model(symmetric=False))
    assert padded(scorer, (0, 0), (127.5,) * 3) is scorer
    score = tf.function(padded(scorer, (16, 16), (127.5,) * 3), input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    image = pixels((1, 11, 13, 3)).astype(np.float32)
    padded_image = np.full((1, 16, 16, 3), 127.5, np.float32)
    padded_image[:, :11, :13] = image
    np.testing.assert_allclose(score(image), np.asarray(scorer(padded_image))[:, :11, :13], atol=1e-6)
