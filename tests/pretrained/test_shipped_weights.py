"""The models deeplab-tf ships (`weights/`, registered in the zoo): each file is the one
registered (sha256, size limit), scores its recorded mIoU on CamVid val images, and exports and
serves by name without training."""

import os

import numpy as np
import pytest

import experiments
from deeplab_tf.assembly import assemble
from deeplab_tf.config import apply_overrides
from deeplab_tf.evaluation.inference import model_probabilities
from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics
from deeplab_tf.pretrained import zoo
from deeplab_tf.training.checkpoints import restore_model
from export.export_saved_model import export_saved_model
from export.serving import ServingOptions

MAX_FILE_BYTES = 8 * 1024 * 1024
SHIPPED = sorted(name for name in zoo.PRETRAINED_MODELS if zoo.is_shipped(name))
FIRST_VAL_IMAGES = 8
RECORDED_MIOU = {
    # mIoU (%) of the first 8 CamVid val images (val.txt order), one scale, at the experiment's
    # eval.output_stride, measured when the file was written (the same with TF_ENABLE_ONEDNN_OPTS=0);
    # the full-val figure is the zoo entry's `miou`.
    "camvid_mnv2_v3plus": 57.33,
    "camvid_mnv2_voc_transfer": 68.95,
}


def test_every_shipped_file_is_registered_and_small_enough():
    assert SHIPPED == sorted(RECORDED_MIOU)
    for name in SHIPPED:
        path = zoo.shipped_file(name)
        assert os.path.getsize(path) <= MAX_FILE_BYTES
        assert zoo.check_files(zoo.get_pretrained(name), zoo.WEIGHTS_DIR) == []
        assert zoo.file_sha256(path) == zoo.get_pretrained(name).sha256[os.path.basename(path)]


def _camvid_parts(name, camvid_dir):
    experiment = apply_overrides(experiments.get_experiment(zoo.get_pretrained(name).experiment),
                                 [f"data.data_dir={camvid_dir}"])
    return experiment, assemble(experiment, output_stride=experiment.eval.output_stride)


@pytest.mark.integration
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_scores_its_recorded_miou(name, camvid_dir):
    experiment, parts = _camvid_parts(name, camvid_dir)
    assert restore_model(parts.model, name) == zoo.shipped_file(name)
    confusion = np.zeros((parts.info.num_classes,) * 2, np.int64)
    for example in parts.source.examples("val").take(FIRST_VAL_IMAGES).as_numpy_iterator():
        probabilities = model_probabilities(parts.model, parts.normalize, example["image"][None]).numpy()[0]
        confusion += confusion_matrix(example["label"], probabilities.argmax(-1), parts.info.num_classes)
    assert 100 * segmentation_metrics(confusion)["miou"] == pytest.approx(RECORDED_MIOU[name], abs=0.3)


@pytest.mark.integration
def test_shipped_model_exports_and_serves_by_name(tmp_path, camvid_dir, fresh_process_predict):
    name = "camvid_mnv2_voc_transfer"
    experiment, parts = _camvid_parts(name, camvid_dir)
    restore_model(parts.model, name)
    export_saved_model(experiment, name, str(tmp_path / "export"), log=lambda line: None,
                       options=ServingOptions(input_types=("image_tensor",), outputs=("labels",)),
                       output_stride=experiment.eval.output_stride)
    image = next(parts.source.examples("val").as_numpy_iterator())["image"]
    served = fresh_process_predict(tmp_path / "export", image[None])["serving_default/labels"][0]
    ours = model_probabilities(parts.model, parts.normalize, image[None]).numpy()[0].argmax(-1)
    assert served.shape == image.shape[:2]
    assert (served == ours).mean() >= 0.999
