import pytest

from deeplab_tf.config import DataConfig
from deeplab_tf.data.camvid_folder import CamVidFolder
from deeplab_tf.data.sources import SOURCES, dataset_info, get_source
from deeplab_tf.data.synthetic_shapes import SyntheticShapes


def test_get_source_by_name(tmp_path):
    assert isinstance(get_source(DataConfig()), SyntheticShapes)
    source = get_source(DataConfig(dataset="camvid_folder", data_dir=str(tmp_path)))
    assert isinstance(source, CamVidFolder) and source.info.num_classes == 11
    assert sorted(SOURCES) == [
        "ade20k", "camvid", "camvid_folder", "cityscapes", "pascal_context", "pascal_person_part",
        "synthetic_shapes", "voc2012_segmentation",
    ]


def test_dataset_info_of_every_kind_of_source():
    """Classes without reading data: from the source class, our TFDS builder or the entry."""
    assert dataset_info("synthetic_shapes") is SyntheticShapes.info
    assert dataset_info("camvid_folder").num_classes == 11
    assert dataset_info("camvid").name == "camvid" and dataset_info("camvid").num_classes == 11
    assert dataset_info("cityscapes").num_classes == 19


@pytest.mark.parametrize("lookup", [lambda name: get_source(DataConfig(dataset=name)), dataset_info])
def test_unknown_name_lists_known_and_closest(lookup):
    expected = r"'synthetic_shape'. Did you mean 'synthetic_shapes'\?.*camvid_folder, cityscapes"
    with pytest.raises(ValueError, match=expected):
        lookup("synthetic_shape")


def test_max_examples_takes_first_n():
    dataset = get_source(DataConfig(max_examples=5)).examples("val")
    assert dataset.cardinality() == 5


def test_camvid_without_data_dir_fails_early():
    with pytest.raises(ValueError, match="data.data_dir"):
        get_source(DataConfig(dataset="camvid_folder"))
