"""The official TFLite DeepLabv3 (MobileNetV2 depth 0.5, `deeplabv3_257_mv_gpu.tflite`) imported
into `voc_v3_mnv2_dm05_official` and exported by export.export_tflite at 257x257 float32 gives,
in the same LiteRT interpreter, the official file's logits to 1e-4 of their largest magnitude on
the two VOC photos and four CamVid val images, with the same operators (dilated depthwise
convolutions, no SpaceToBatchND), and is at most 0.5% larger than it."""

import collections
import os

import numpy as np
import pytest
from PIL import Image

import experiments
from deeplab_tf.backbones import get_normalizer
from deeplab_tf.config import apply_overrides
from deeplab_tf.evaluation.tflite_segmenter import TFLiteSegmenter
from deeplab_tf.pretrained.tflite_file import read_ops
from export.export_tflite import export_tflite
from tests.pretrained.conftest import CAMVID_IMAGES, camvid_photos, tflite_path, voc_photos  # noqa: F401 (fixtures)

# The official file runs on the 257x257 image itself (no 513 padding), as the app feeds it.
EXPERIMENT = apply_overrides(experiments.get_experiment("voc_v3_mnv2_dm05_official"), "eval.pad_to_size=(0,0)")
SIZE = 257


@pytest.fixture(scope="module")
def ours(tflite_path, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("official_parity") / "dm05_257.tflite")
    export_tflite(EXPERIMENT, tflite_path, path, (SIZE, SIZE), "float32", ("labels", "logits"), log=lambda line: None)
    return path


@pytest.fixture(scope="module")
def images(voc_photos, camvid_photos):
    """[(name, uint8 [257, 257, 3])]: each photo resized (PIL bilinear) to 257x257, as the app does."""
    photos = [(name, Image.fromarray(image)) for name, image in voc_photos] + camvid_photos
    return [(name, np.asarray(image.resize((SIZE, SIZE), Image.BILINEAR))) for name, image in photos]


@pytest.fixture(scope="module")
def results(tflite_path, ours, images):
    """{name: (official logits [257, 257, 21], our logits, our labels)}, both files in LiteRT's
    interpreter with its default (XNNPACK) kernels; the official file fed (x - 127.5) / 127.5."""
    from ai_edge_litert.interpreter import Interpreter

    official = Interpreter(model_path=tflite_path)
    official.allocate_tensors()
    (feed,), (fetch,) = official.get_input_details(), official.get_output_details()
    normalize = get_normalizer(EXPERIMENT.model.backbone)
    segmenter = TFLiteSegmenter(ours)
    out = {}
    for name, image in images:
        official.set_tensor(feed["index"], np.asarray(normalize(image[None].astype(np.float32)), np.float32))
        official.invoke()
        mine = segmenter(image)
        out[name] = (official.get_tensor(fetch["index"])[0], mine["logits"][0], mine["labels"][0])
    return out


@pytest.mark.parametrize("index", range(2 + CAMVID_IMAGES))
def test_logits_equal_the_official_files(images, results, index):
    name = images[index][0]
    reference, logits, _ = results[name]
    assert logits.shape == reference.shape == (SIZE, SIZE, 21)
    assert np.abs(logits - reference).max() <= 1e-4 * np.abs(reference).max(), name


@pytest.mark.parametrize("index", range(2 + CAMVID_IMAGES))
def test_labels_equal_the_official_argmax_where_the_top2_margin_exceeds_1e_3(images, results, index):
    name = images[index][0]
    reference, _, labels = results[name]
    top2 = np.sort(reference, axis=-1)[..., -2:]
    decided = top2[..., 1] - top2[..., 0] > 1e-3
    assert decided.mean() > 0.99, name
    np.testing.assert_array_equal(labels[decided], np.argmax(reference, -1)[decided], err_msg=name)


def test_same_convolutions_as_the_official_file_and_about_its_size(tflite_path, ours):
    """Same convolutions (38 CONV_2D, 17 DEPTHWISE_CONV_2D, 10 of them dilated), residual ADDs and
    concatenation; the image pooling is a MEAN where the official file has an AVERAGE_POOL_2D (its
    third RESIZE_BILINEAR broadcasts the 1x1 pooled map, ours is folded away), and ours adds the uint8
    input's normalisation (CAST, MUL, SUB) and the ARG_MAX of its labels."""
    theirs, mine = read_ops(tflite_path), read_ops(ours)
    dilated = lambda ops: collections.Counter((op.opcode, op.dilation) for op in ops if max(op.dilation) > 1)
    assert dilated(mine) == dilated(theirs) == {("DEPTHWISE_CONV_2D", (2, 2)): 7, ("DEPTHWISE_CONV_2D", (4, 4)): 3}
    counts, official = (collections.Counter(op.opcode for op in ops) for ops in (mine, theirs))
    for opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "CONCATENATION"):
        assert counts[opcode] == official[opcode], opcode
    assert counts - official == {"MEAN": 1, "CAST": 1, "MUL": 1, "SUB": 1, "ARG_MAX": 1}
    assert official - counts == {"AVERAGE_POOL_2D": 1, "RESIZE_BILINEAR": 1}
    # The same 688,357 weights in float32; ours carries longer tensor names (Keras paths) and its
    # description (classes, palette) as metadata: 8 KB, 0.3% more (BENCHMARKS.md, "TFLite export").
    assert os.path.getsize(ours) <= 1.005 * os.path.getsize(tflite_path)
