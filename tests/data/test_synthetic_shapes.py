import cv2
import numpy as np
import pytest

from deeplab_tf.data.synthetic_shapes import (
    SPLITS,
    SYNTHETIC_INFO,
    SyntheticShapes,
    generate_example,
    generate_split,
)

HUE_FAMILIES = {1: (0, 22), 2: (45, 75), 3: (100, 130)}  # OpenCV hue ranges, as documented


def test_split_sizes_shapes_and_dtypes():
    source = SyntheticShapes()
    assert source.info.num_classes == 4 and len(set(source.info.palette)) == 4
    for split, count in (("train", 1000), ("val", 200)):
        dataset = source.examples(split)
        assert dataset.cardinality() == count
        spec = dataset.element_spec
        assert spec["image"].shape == (128, 128, 3) and spec["image"].dtype.name == "uint8"
        assert spec["label"].shape == (128, 128) and spec["label"].dtype.name == "uint8"
    first = next(iter(source.examples("val")))
    assert first["name"].numpy() == b"synthetic_shapes/val/00000"


def test_generation_is_deterministic_and_prefix_stable():
    images, labels = generate_split("val", 200)
    again = generate_example(np.random.default_rng((SPLITS["val"][0], 7)))
    np.testing.assert_array_equal(again[0], images[7])
    np.testing.assert_array_equal(again[1], labels[7])
    first = next(iter(SyntheticShapes(max_examples=3).examples("val")))
    np.testing.assert_array_equal(first["image"], images[0])
    assert SyntheticShapes(max_examples=3).examples("val").cardinality() == 3


def test_train_and_val_share_no_image():
    train_images, _ = generate_split("train", 1000)
    val_images, _ = generate_split("val", 200)
    train_bytes = {image.tobytes() for image in train_images}
    assert len(train_bytes) == 1000
    assert not train_bytes & {image.tobytes() for image in val_images}


def test_labels_cover_every_class_and_match_colour_families():
    images, labels = generate_split("val", 200)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    per_image = [len(np.unique(label)) for label in labels]
    assert min(per_image) >= 2 and max(per_image) >= 4
    hsv = cv2.cvtColor(images.reshape(-1, 128, 3), cv2.COLOR_RGB2HSV).reshape(images.shape)
    hue, saturation = hsv[..., 0].astype(int), hsv[..., 1]
    assert np.median(saturation[labels == 0]) < 60
    for class_id, (low, high) in HUE_FAMILIES.items():
        pixels = labels == class_id
        in_family = (hue[pixels] >= low - 6) & (hue[pixels] <= high + 6)
        assert in_family.mean() > 0.95, SYNTHETIC_INFO.class_names[class_id]


def test_unknown_split_lists_valid_splits():
    with pytest.raises(ValueError, match=r"'test'.*\['train', 'val'\]"):
        SyntheticShapes().examples("test")
