"""`pascal_person_part`: PASCAL-Person-Part, background + 6 human parts (Chen et al. 2016).

Manual files: `VOCtrainval_03-May-2010.tar` (images and split lists) and the PASCAL-Part release's
`trainval.tar.gz` (http://roozbehm.info/pascal-parts/), which holds `Annotations_Part/<id>.mat`
with variable `anno`: `anno.objects` is a struct array with fields `class` (e.g. "person"),
`class_ind`, `mask` and `parts`, a struct array with fields `part_name` and `mask` (uint8 [H, W]).

Labels are drawn from every `person` object's part masks, in file order (later parts overwrite
earlier ones), with the part-name grouping of DeepLab's Person-Part labels (Chen et al., "Attention
to Scale", CVPR 2016; Xia et al., "Zoom Better to See Clearer", ECCV 2016), `PART_GROUPS`:
1 head = head, hair, eyes, ears, eyebrows, nose, mouth; 2 torso = torso, neck; 3 upper arms;
4 lower arms + hands; 5 upper legs; 6 lower legs + feet. Pixels outside person parts are 0;
nothing is ignored. A part name outside `PART_GROUPS` fails the preparation, naming the file.

Splits: `train` (1,716) and `val` (1,817) published. If the manual dir holds the published id lists
`train_id.txt` / `val_id.txt` (one VOC2010 id per line), they define the splits; otherwise a split
is the VOC2010 `ImageSets/Main/{train,val}.txt` images with at least one annotated person part.
"""

import numpy as np

from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.data.tfds import label_io, manual_files
from deeplab_tf.data.tfds.segmentation_builder import Example, SegmentationBuilder

PART_GROUPS = {
    "head": 1, "hair": 1, "leye": 1, "reye": 1, "lear": 1, "rear": 1, "lebrow": 1, "rebrow": 1,
    "nose": 1, "mouth": 1,
    "torso": 2, "neck": 2,
    "luarm": 3, "ruarm": 3,
    "llarm": 4, "rlarm": 4, "lhand": 4, "rhand": 4,
    "luleg": 5, "ruleg": 5,
    "llleg": 6, "rlleg": 6, "lfoot": 6, "rfoot": 6,
}

PERSON_PART_INFO = DatasetInfo(
    name="pascal_person_part",
    class_names=("background", "head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs"),
    palette=label_io.voc_colormap(7),
)

PASCAL_PART_TRAINVAL = manual_files.ManualFile(
    description="PASCAL-Part annotations (Annotations_Part/<id>.mat, variable anno)",
    archives=("trainval.tar.gz", "pascal_part_trainval.tar.gz"),
    folders=("Annotations_Part", "trainval/Annotations_Part"),
    url="http://roozbehm.info/pascal-parts/trainval.tar.gz",
)


class PascalPersonPart(SegmentationBuilder):
    """PASCAL-Person-Part: VOC2010 images of people, background + head, torso, upper arms,
    lower arms, upper legs, lower legs."""

    CLASSES = PERSON_PART_INFO
    MANUAL_FILES = {"voc": manual_files.VOC2010_TRAINVAL, "parts": PASCAL_PART_TRAINVAL}
    MANUAL_DOWNLOAD_INSTRUCTIONS = manual_files.instructions(MANUAL_FILES.values()) + (
        "\nOptional: the published split lists train_id.txt and val_id.txt (one id per line)."
    )
    HOMEPAGE = "http://roozbehm.info/pascal-parts/pascal-parts.html"
    CITATION = """@inproceedings{chen2014detect,
  author = {Chen, Xianjie and Mottaghi, Roozbeh and Liu, Xiaobai and Fidler, Sanja and
            Urtasun, Raquel and Yuille, Alan},
  title = {Detect What You Can: Detecting and Representing Objects using Holistic Models and
           Body Parts}, booktitle = {CVPR}, year = {2014}}"""

    def _split_generators(self, dl_manager):
        roots = manual_files.locate(dl_manager, self.MANUAL_FILES, self.name)
        voc, parts = roots["voc"], roots["parts"]
        manual_dir = dl_manager.manual_dir
        self._published_lists = (manual_dir / "train_id.txt").is_file()

        def examples(split):
            published = manual_dir / f"{split}_id.txt"
            lists = published if self._published_lists else voc / "ImageSets" / "Main" / f"{split}.txt"
            return [
                Example(i, str(voc / "JPEGImages" / f"{i}.jpg"), str(parts / f"{i}.mat"))
                for i in label_io.read_ids(lists)
            ]

        return {split: self._generate_examples(examples(split)) for split in ("train", "val")}

    def _read_label(self, example, size):
        """Returns the part label, or None (skip) for an image without person parts when the
        split comes from the VOC lists (with published lists it is all background)."""
        anno = label_io.read_mat(example.label, "anno")
        label, found = np.zeros(size, np.uint8), False
        for person in _structs(getattr(anno, "objects", None)):
            if str(getattr(person, "class", "")) != "person":
                continue
            for part in _structs(getattr(person, "parts", None)):
                name, mask = str(getattr(part, "part_name", "")), np.asarray(part.mask)
                if name not in PART_GROUPS:
                    raise ValueError(
                        f"{example.label}: person part {name!r} is not one of {sorted(PART_GROUPS)}"
                    )
                if mask.shape != label.shape:
                    raise ValueError(
                        f"{example.label}: part {name!r} mask has shape {mask.shape} but image "
                        f"{example.image} is {size[0]}x{size[1]} (height x width)"
                    )
                label[mask > 0] = PART_GROUPS[name]
                found = True
        return label if found or self._published_lists else None

def _structs(value) -> list:
    """Returns a MATLAB struct array loaded with squeeze_me=True as a list (empty for [] / None)."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]

