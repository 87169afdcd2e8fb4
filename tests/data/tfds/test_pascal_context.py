"""`pascal_context` on a fake VOC2010 archive + Context `trainval.tar.gz` (LabelMap .mat files)."""

import numpy as np
import pytest

from deeplab_tf.data.tfds.pascal_context import CONTEXT_CLASSES, CONTEXT_INFO

SPLITS = {"train": ["2008_000002", "2008_000003"], "val": ["2008_000007"]}
SIZES = {"2008_000002": (6, 8), "2008_000003": (9, 7), "2008_000007": (5, 5)}


def label_map(size):
    """LabelMap values: 0 unlabelled, 2 aeroplane, 100 (not one of the 59), 284 person, 458 wood."""
    values = np.array([0, 2, 100, 284, 458], np.uint16)
    return values[np.arange(size[0] * size[1]).reshape(size) % len(values)]


def write_context(upstream, root, maps):
    for image_id, values in maps.items():
        upstream.mat(str(root / "ctx" / "trainval" / f"{image_id}.mat"), {"LabelMap": values})
    return root / "ctx"


@pytest.fixture
def context_manual(tmp_path, upstream):
    manual = tmp_path / "manual"
    upstream.tar(str(manual / "VOCtrainval_03-May-2010.tar"),
                 upstream.voc2010(str(tmp_path / "voc"), SPLITS, SIZES))
    maps = {image_id: label_map(size) for image_id, size in SIZES.items()}
    upstream.tar(str(manual / "trainval.tar.gz"), str(write_context(upstream, tmp_path, maps)))
    return manual


def test_class_list_is_59_plus_background_in_alphabetical_order():
    names = CONTEXT_INFO.class_names
    assert len(names) == 60 and names[0] == "background"
    assert list(names[1:]) == sorted(names[1:]) and len(set(names)) == 60
    assert list(CONTEXT_CLASSES) == sorted(CONTEXT_CLASSES)  # label order = labels.txt id order


def test_splits_and_label_mapping(context_manual, prepare, read):
    builder = prepare("pascal_context", context_manual)
    train, val = read(builder, "train"), read(builder, "val")
    assert sorted(train) == SPLITS["train"] and sorted(val) == SPLITS["val"]
    image, label = train["2008_000003"]
    assert image.shape == (9, 7, 3)
    expected = np.array([0, 1, 0, 37, 59])[np.arange(63).reshape(9, 7) % 5]
    np.testing.assert_array_equal(label, expected)
    assert CONTEXT_INFO.class_names[37] == "person" and CONTEXT_INFO.class_names[59] == "wood"
    assert builder.info.metadata["ignore_label"] == 255 and len(builder.info.metadata["class_names"]) == 60


def test_value_beyond_the_459_labels_names_the_file(tmp_path, upstream, prepare):
    manual = tmp_path / "manual"
    upstream.tar(str(manual / "VOCtrainval_03-May-2010.tar"),
                 upstream.voc2010(str(tmp_path / "voc"), SPLITS, SIZES))
    maps = {image_id: label_map(size) for image_id, size in SIZES.items()}
    maps["2008_000007"][0, 0] = 460
    upstream.tar(str(manual / "trainval.tar.gz"), str(write_context(upstream, tmp_path, maps)))
    with pytest.raises(ValueError, match=r"2008_000007\.mat: label values \[460\]"):
        prepare("pascal_context", manual)


def test_label_of_another_size_names_both_files(tmp_path, upstream, prepare):
    manual = tmp_path / "manual"
    upstream.tar(str(manual / "VOCtrainval_03-May-2010.tar"),
                 upstream.voc2010(str(tmp_path / "voc"), SPLITS, SIZES))
    maps = {image_id: label_map(size) for image_id, size in SIZES.items()}
    maps["2008_000002"] = label_map((6, 9))
    upstream.tar(str(manual / "trainval.tar.gz"), str(write_context(upstream, tmp_path, maps)))
    with pytest.raises(ValueError, match=r"2008_000002\.mat is 6x9 but image .*2008_000002\.jpg is 6x8"):
        prepare("pascal_context", manual)
