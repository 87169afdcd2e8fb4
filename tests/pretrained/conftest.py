"""Fixtures: the official DeepLab reference data in ../shared/data/official_deeplab (read-only)."""

import os

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFICIAL_DIR = os.path.abspath(os.path.join(REPO_ROOT, "..", "shared", "data", "official_deeplab"))


def _official_path(relative: str) -> str:
    path = os.path.join(OFFICIAL_DIR, relative)
    if not os.path.exists(path):
        pytest.skip(f"official DeepLab data not found: {path} (expected ../shared/data/official_deeplab)")
    return path


@pytest.fixture(scope="session")
def tfjs_model_dir():
    """The TF.js graph model of deeplabv3_mnv2_pascal_trainval (directory with model.json)."""
    return _official_path("tfjs_mnv2_voc_trainval")


@pytest.fixture(scope="session")
def tflite_path():
    """The official float TFLite DeepLabv3 MobileNetV2 (depth 0.5) file."""
    return _official_path(os.path.join("tflite_mnv2_dm05_voc", "deeplabv3_257_mv_gpu.tflite"))


@pytest.fixture(scope="session")
def bird():
    """(photo uint8 [513, 513, 3] RGB, VOC mask uint8 [513, 513]; bird = class 3)."""
    image = np.asarray(Image.open(_official_path("images/bird_segmentation.bmp")).convert("RGB"))
    mask = np.asarray(Image.open(_official_path("images/bird_segmentation_mask.bmp")))
    return image, mask


CAMVID_IMAGES = 4
"""How many CamVid val images the parity tests compare on."""


@pytest.fixture(scope="session")
def voc_photos():
    """[(name, RGB uint8 [H, W, 3])]: the bird (513x513) and dog (128x128) photos (BMP stores BGR;
    PIL decodes it to RGB)."""
    return [(name, np.asarray(Image.open(_official_path(f"images/{name}_segmentation.bmp")).convert("RGB")))
            for name in ("bird", "dog")]


@pytest.fixture(scope="session")
def camvid_photos(camvid_dir):
    """[(file name, PIL RGB image at its own size)]: `CAMVID_IMAGES` evenly spaced val images."""
    with open(os.path.join(camvid_dir, "val.txt")) as f:
        lines = [line.split()[0] for line in f if line.strip()]
    return [(os.path.basename(path), Image.open(os.path.join(camvid_dir, path)).convert("RGB"))
            for path in lines[:: len(lines) // CAMVID_IMAGES][:CAMVID_IMAGES]]
