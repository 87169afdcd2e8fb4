"""`ade20k` on a fake `ADEChallengeData2016.zip` in the SceneParsing layout."""

import numpy as np
import pytest

from deeplab_tf.data.tfds.ade20k import ADE20K_INFO


def write_ade(upstream, root, labels):
    """ADEChallengeData2016/{images,annotations}/{training,validation}; `labels` = {(folder, id): array}."""
    for index, ((folder, image_id), label) in enumerate(sorted(labels.items())):
        base = root / "ade" / "ADEChallengeData2016"
        upstream.image(str(base / "images" / folder / f"{image_id}.jpg"), *label.shape, seed=index)
        upstream.gray_png(str(base / "annotations" / folder / f"{image_id}.png"), label)
    return root / "ade"


LABEL = np.array([[0, 1, 150], [12, 0, 3]], np.uint8)


def test_zero_is_ignored_and_classes_shift_down(tmp_path, upstream, prepare, read):
    labels = {("training", "ADE_train_00000001"): LABEL, ("training", "ADE_train_00000002"): LABEL,
              ("validation", "ADE_val_00000001"): LABEL}
    manual = tmp_path / "manual"
    upstream.zip(str(manual / "ADEChallengeData2016.zip"), str(write_ade(upstream, tmp_path, labels)))
    builder = prepare("ade20k", manual)
    assert sorted(read(builder, "train")) == ["ADE_train_00000001", "ADE_train_00000002"]
    np.testing.assert_array_equal(read(builder, "val")["ADE_val_00000001"][1], [[255, 0, 149], [11, 255, 2]])
    assert len(ADE20K_INFO.class_names) == 150 and ADE20K_INFO.class_names[12] == "person"


def test_value_above_150_names_the_file(tmp_path, upstream, prepare):
    labels = {("training", "ADE_train_00000001"): LABEL, ("validation", "ADE_val_00000001"): LABEL + 100}
    manual = tmp_path / "manual"
    upstream.zip(str(manual / "ADEChallengeData2016.zip"), str(write_ade(upstream, tmp_path, labels)))
    with pytest.raises(ValueError, match=r"ADE_val_00000001\.png: label values \[250\]"):
        prepare("ade20k", manual)
