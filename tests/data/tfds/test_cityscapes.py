"""`cityscapes` through TFDS's own builder, on fake `leftImg8bit_trainvaltest.zip` and
`gtFine_trainvaltest.zip` (`*_leftImg8bit.png`, `*_gtFine_labelIds.png`), mapped to 19 train ids."""

import numpy as np
import pytest
from PIL import Image

from deeplab_tf.data.tfds.cityscapes import CITYSCAPES_INFO, TRAIN_IDS
from deeplab_tf.data.tfds_source import TfdsSource

HEIGHT, WIDTH = 1024, 2048  # TFDS's builder declares this fixed shape
FILES = {"train": ["aachen_000000_000019", "aachen_000001_000019"], "val": ["frankfurt_000000_000294"],
         "test": ["berlin_000000_000019"]}
LABEL_IDS = np.array([0, 1, 7, 8, 26, 33, 24, 9], np.uint8)  # unlabeled, ego vehicle, road, ..., parking


def write_cityscapes(tmp_path, upstream):
    labels = LABEL_IDS[(np.arange(WIDTH) // 256)][np.newaxis].repeat(HEIGHT, 0)
    for split, ids in FILES.items():
        for image_id in ids:
            city = image_id.split("_")[0]
            image = tmp_path / "left" / "leftImg8bit" / split / city / f"{image_id}_leftImg8bit.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (WIDTH, HEIGHT), (70, 130, 180)).save(image, compress_level=1)
            upstream.gray_png(str(tmp_path / "gt" / "gtFine" / split / city / f"{image_id}_gtFine_labelIds.png"),
                              labels)
    manual = tmp_path / "manual"
    upstream.zip(str(manual / "leftImg8bit_trainvaltest.zip"), str(tmp_path / "left"))
    upstream.zip(str(manual / "gtFine_trainvaltest.zip"), str(tmp_path / "gt"))
    return manual


def test_train_id_table():
    assert TRAIN_IDS[7] == 0 and TRAIN_IDS[26] == 13 and TRAIN_IDS[33] == 18
    assert sum(TRAIN_IDS != 255) == 19 and TRAIN_IDS[0] == TRAIN_IDS[9] == TRAIN_IDS[255] == 255
    assert len(CITYSCAPES_INFO.class_names) == 19


def test_source_maps_label_ids_to_train_ids(tmp_path, upstream):
    source = TfdsSource("cityscapes", str(write_cityscapes(tmp_path, upstream)), str(tmp_path / "tfds"))
    assert {k: v.num_examples for k, v in source.builder.info.splits.items()} == {"train": 2, "validation": 1, "test": 1}
    example = next(iter(source.examples("val")))  # alias of "validation"
    assert example["name"].numpy() == b"frankfurt_000000_000294"
    assert example["image"].shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(example["label"].numpy()[0, ::256], [255, 255, 0, 1, 13, 18, 11, 255])


def test_missing_zip_is_named_before_preparing(tmp_path, upstream):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "leftImg8bit_trainvaltest.zip").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"gtFine_trainvaltest\.zip.*cityscapes-dataset\.com"):
        TfdsSource("cityscapes", str(manual), str(tmp_path / "tfds"))
