"""Fixtures for the TFDS builder tests: tiny fake upstream files in their real formats, preparing
a builder into a temporary TFDS data dir, reading a prepared split back, and real CamVid."""

import os
import tarfile
import zipfile

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from PIL import Image

import deeplab_tf.data.tfds  # noqa: F401  (registers the builders)
from deeplab_tf.data.tfds.label_io import voc_colormap

tfds.disable_progress_bar()

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CAMVID_DIR = os.path.join(REPO_ROOT, "..", "shared", "data", "camvid")


class Upstream:
    """Writers for the upstream formats, each creating parent folders and returning the path."""

    @staticmethod
    def _parent(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def image(self, path, height, width, seed=0):
        """An RGB JPEG or PNG (by extension) of smooth random colours."""
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(self._parent(path))
        return path

    def palette_png(self, path, label):
        """A palette ('P') PNG with the VOC colour map, like VOC's SegmentationClass files."""
        image = Image.fromarray(np.asarray(label, np.uint8), mode="P")
        image.putpalette([c for colour in voc_colormap(256) for c in colour])
        image.save(self._parent(path))
        return path

    def gray_png(self, path, label):
        """A grayscale ('L') PNG, like CamVid's, ADE20K's and Cityscapes' label files."""
        Image.fromarray(np.asarray(label, np.uint8), mode="L").save(self._parent(path))
        return path

    def mat(self, path, variables):
        """A MATLAB v5 file (dicts become structs, structured arrays struct arrays)."""
        scipy.io.savemat(self._parent(path), variables)
        return path

    def tar(self, archive, root, members=None):
        """Packs folder `root`'s entries `members` (all by default) into `archive` (.tar/.tgz)."""
        mode = "w:gz" if archive.endswith(("gz", ".tgz")) else "w"
        with tarfile.open(self._parent(archive), mode) as tar:
            for name in members or sorted(os.listdir(root)):
                tar.add(os.path.join(root, name), arcname=name)
        return archive

    def zip(self, archive, root, members=None):
        """Packs folder `root`'s entries `members` (all by default) into the zip `archive`."""
        with zipfile.ZipFile(self._parent(archive), "w") as zipped:
            for name in members or sorted(os.listdir(root)):
                for folder, _, files in os.walk(os.path.join(root, name)):
                    for file in files:
                        full = os.path.join(folder, file)
                        zipped.write(full, os.path.relpath(full, root))
        return archive

    def voc2010(self, root, splits, sizes):
        """VOCdevkit/VOC2010 under `root`: JPEGImages for `sizes` ({id: (h, w)}) and
        ImageSets/Main/<split>.txt for `splits` ({split: [ids]}); returns `root`."""
        voc = os.path.join(root, "VOCdevkit", "VOC2010")
        for index, (image_id, size) in enumerate(sorted(sizes.items())):
            self.image(os.path.join(voc, "JPEGImages", f"{image_id}.jpg"), *size, seed=index)
        os.makedirs(os.path.join(voc, "ImageSets", "Main"))
        for split, ids in splits.items():
            with open(os.path.join(voc, "ImageSets", "Main", f"{split}.txt"), "w") as listing:
                listing.write("".join(f"{i}\n" for i in ids))
        return root

    def camvid_folder(self, root, splits):
        """A SegNet-layout CamVid folder; `splits` = {split: [label arrays]}, images 8x10 by default."""
        for split, labels in splits.items():
            lines = []
            for index, label in enumerate(labels):
                name = f"0001TP_{index:06d}.png"
                self.image(os.path.join(root, split, name), *np.shape(label), seed=index)
                self.gray_png(os.path.join(root, f"{split}annot", name), label)
                lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}\n")
            with open(os.path.join(root, f"{split}.txt"), "w") as listing:
                listing.writelines(lines)
        return root


@pytest.fixture
def upstream():
    return Upstream()


@pytest.fixture
def prepare(tmp_path):
    """Returns prepare(name, manual_dir) -> the builder, prepared into tmp_path/tfds."""

    def run(name, manual_dir):
        builder = tfds.builder(name, data_dir=str(tmp_path / "tfds"))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir), try_download_gcs=False)
        )
        return builder

    return run


def read_split(builder, split, image_key="image", label_key="label", name_key="name"):
    """Returns {name: (image uint8 [H,W,3], label uint8 [H,W])} of a prepared split."""
    examples = {}
    for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
        name = example[name_key].decode()
        examples[name] = (example[image_key], example[label_key][..., 0])
    return examples


@pytest.fixture
def read():
    return read_split


@pytest.fixture
def nothing_prepared():
    """Returns check(name, data_dir): asserts TFDS finds no prepared `name` and no files of it."""

    def check(name, data_dir):
        builder = tfds.builder(name, data_dir=data_dir)
        assert not builder.is_prepared()
        with pytest.raises(AssertionError, match="could not find data"):
            builder.as_dataset(split="train")
        leftovers = [os.path.join(folder, f) for folder, _, files in os.walk(os.path.join(data_dir, name))
                     for f in files]
        assert leftovers == [], leftovers

    return check


@pytest.fixture(scope="session")
def camvid_tfds(tmp_path_factory):
    """Real CamVid prepared once per session with the `camvid` builder: (builder, folder, data dir)."""
    if not os.path.isfile(os.path.join(CAMVID_DIR, "train.txt")):
        pytest.skip(f"CamVid not found at {os.path.abspath(CAMVID_DIR)}")
    data_dir = str(tmp_path_factory.mktemp("camvid_tfds"))
    folder = os.path.abspath(CAMVID_DIR)
    builder = tfds.builder("camvid", data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=folder, try_download_gcs=False)
    )
    return builder, folder, data_dir

