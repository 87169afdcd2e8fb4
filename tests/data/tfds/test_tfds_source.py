"""`TfdsSource` / `get_source`: TFDS datasets by name, preparation on first use, errors."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from deeplab_tf.config import DataConfig
from deeplab_tf.data import SOURCES, TfdsSource, get_source

LABEL = np.array([[0, 1, 11], [2, 3, 4]], np.uint8)


@pytest.fixture
def camvid_fake(tmp_path, upstream, monkeypatch):
    """A fake SegNet-layout folder (train 3, val 2); TFDS_DATA_DIR points at an empty tmp dir."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return upstream.camvid_folder(str(tmp_path / "camvid"), {"train": [LABEL] * 3, "val": [LABEL] * 2})


def test_every_builder_is_a_tfds_source():
    tfds_names = sorted(name for name, spec in SOURCES.items() if spec.tfds is not None)
    assert tfds_names == [
        "ade20k", "camvid", "cityscapes", "pascal_context", "pascal_person_part", "voc2012_segmentation",
    ]
    for name in tfds_names:
        assert SOURCES[name].build == TfdsSource.from_config
        if name != "cityscapes":
            assert name in tfds.list_builders(with_community_datasets=False)


def test_tfds_source_of_another_kind_of_dataset_is_refused():
    with pytest.raises(ValueError, match="'camvid_folder' is not stored as a TFDS builder. TFDS datasets: ade20k"):
        TfdsSource("camvid_folder")
    with pytest.raises(ValueError, match="Did you mean 'camvid'"):
        TfdsSource("camvd")


def test_get_source_prepares_once_then_reads(camvid_fake, tmp_path):
    source = get_source(DataConfig(dataset="camvid", data_dir=camvid_fake))
    assert isinstance(source, TfdsSource) and source.info.name == "camvid" and source.info.num_classes == 11
    example = next(iter(source.examples("train")))
    assert example["image"].dtype == tf.uint8 and example["image"].shape == (2, 3, 3)
    np.testing.assert_array_equal(example["label"], [[0, 1, 255], [2, 3, 4]])
    assert example["name"].numpy().decode().startswith("train/0001TP_")
    assert (tmp_path / "tfds" / "camvid" / "1.0.0" / "dataset_info.json").is_file()
    again = get_source(DataConfig(dataset="camvid", max_examples=2))  # no manual dir needed now
    assert again.examples("train").cardinality() == 2 and again.examples("val[:1]").cardinality() == 1


def test_classes_come_from_the_prepared_metadata(camvid_fake, tmp_path):
    get_source(DataConfig(dataset="camvid", data_dir=camvid_fake))
    restored = tfds.builder_from_directory(str(tmp_path / "tfds" / "camvid" / "1.0.0"))
    assert restored.info.metadata["class_names"][10] == "Bicyclist"
    assert restored.info.metadata["ignore_label"] == 255


def test_unknown_split_lists_the_prepared_ones(camvid_fake):
    source = get_source(DataConfig(dataset="camvid", data_dir=camvid_fake))
    with pytest.raises(ValueError, match=r"no split 'test'; prepared splits: train, val"):
        source.examples("test")


def test_unprepared_without_data_dir_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match=r"(?s)not prepared.*data\.data_dir.*VOCtrainval_11-May-2012\.tar.*benchmark\.tgz"):
        get_source(DataConfig(dataset="voc2012_segmentation", train_split="train_aug"))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        get_source(DataConfig(dataset="pascal_context", data_dir=str(tmp_path / "nowhere")))


def test_unknown_name_suggests_tfds_datasets():
    with pytest.raises(ValueError, match=r"Did you mean 'pascal_context'\?.*Known datasets: ade20k, camvid"):
        get_source(DataConfig(dataset="pascal_contxt"))


def test_records_prepared_from_another_manual_dir_are_refused(tmp_path, upstream):
    """Prepared records remember their manual dir: pointing data.data_dir at another folder must
    not silently read the old records."""
    label = np.zeros((2, 3), np.uint8)
    first = upstream.camvid_folder(str(tmp_path / "first"), {"train": [label], "val": [label]})
    second = upstream.camvid_folder(str(tmp_path / "second"), {"train": [label], "val": [label]})
    TfdsSource("camvid", first, str(tmp_path / "tfds"))
    TfdsSource("camvid", first, str(tmp_path / "tfds"))  # the same folder again: reused
    with pytest.raises(ValueError, match=r"already prepared .* from .*first.* now .*second"):
        TfdsSource("camvid", second, str(tmp_path / "tfds"))
