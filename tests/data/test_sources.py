import pytest

from deeplab_tf.config import DataConfig
from deeplab_tf.data.camvid_folder import CamVidFolder
from deeplab_tf.data.sources import SOURCES, get_source
from deeplab_tf.data.synthetic_shapes import SyntheticShapes


def test_get_source_by_name(tmp_path):
    assert isinstance(get_source(DataConfig()), SyntheticShapes)
    source = get_source(DataConfig(dataset="camvid_folder", data_dir=str(tmp_path)))
    assert isinstance(source, CamVidFolder) and source.info.num_classes == 11
    assert sorted(SOURCES) == ["camvid_folder", "synthetic_shapes"]


def test_unknown_name_lists_known_and_closest():
    expected = r"Did you mean 'synthetic_shapes'\?.*camvid_folder, synthetic_shapes"
    with pytest.raises(ValueError, match=expected):
        get_source(DataConfig(dataset="synthetic_shape"))


def test_max_examples_takes_first_n():
    dataset = get_source(DataConfig(max_examples=5)).examples("val")
    assert dataset.cardinality() == 5


def test_camvid_without_data_dir_fails_early():
    with pytest.raises(ValueError, match="data.data_dir"):
        get_source(DataConfig(dataset="camvid_folder"))
