"""The official VOC model, imported from its published TF.js files and exported, serves: in a
fresh process that cannot import the project, the SavedModel labels the bird photo as bird (VOC
class 3) and agrees with its mask, with and without the dense CRF in the graph."""

import os

import numpy as np
import pytest
from PIL import Image

import experiments
from deeplab_tf.crf import DenseCRFParams
from export.export_saved_model import export_saved_model
from export.serving import ServingOptions

OFFICIAL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "official_deeplab")
BIRD = 3  # VOC class index (background 0, aeroplane 1, bicycle 2, bird 3)


@pytest.mark.parametrize("crf", [None, DenseCRFParams()], ids=["plain", "crf"])
def test_exported_official_model_labels_the_bird(crf, tmp_path, fresh_process_predict):
    tfjs = os.path.join(OFFICIAL, "tfjs_mnv2_voc_trainval")
    if not os.path.isfile(os.path.join(tfjs, "model.json")):
        pytest.skip(f"official TF.js model not found at {os.path.abspath(tfjs)}")
    experiment = experiments.get_experiment("voc_v3_mnv2_official")
    options = ServingOptions(input_types=("image_tensor",), outputs=("labels",), crf=crf,
                             pad_to_size=experiment.eval.pad_to_size, pad_value=experiment.eval.pad_value)
    export_saved_model(experiment, tfjs, str(tmp_path / "export"), options=options, log=lambda line: None)
    image = np.array(Image.open(os.path.join(OFFICIAL, "images", "bird_segmentation.bmp")).convert("RGB"))
    mask = np.array(Image.open(os.path.join(OFFICIAL, "images", "bird_segmentation_mask.bmp")))
    labels = fresh_process_predict(tmp_path / "export", image[None])["serving_default/labels"][0]
    assert labels.shape == mask.shape
    assert (labels == mask).mean() >= 0.95
    assert np.bincount(labels[mask == BIRD].ravel()).argmax() == BIRD  # the bird's pixels are labelled bird


def test_a_published_model_that_only_starts_the_experiment_is_not_exported(tmp_path):
    """The report's case: `camvid_mnv2_voc_transfer` exported straight from the VOC model it starts
    from (its decoder and CamVid classifier random). Refused naming them; nothing written."""
    tfjs = os.path.join(OFFICIAL, "tfjs_mnv2_voc_trainval")
    if not os.path.isfile(os.path.join(tfjs, "model.json")):
        pytest.skip(f"official TF.js model not found at {os.path.abspath(tfjs)}")
    experiment = experiments.get_experiment("camvid_mnv2_voc_transfer")
    with pytest.raises(ValueError, match=r"at their random initialisation \(7: decoder_conv1_bn, .* and 2 more\): .*"
                                         r"--override=train.init_checkpoint="):
        export_saved_model(experiment, tfjs, str(tmp_path / "export"), log=lambda line: None)
    assert list(tmp_path.iterdir()) == []
