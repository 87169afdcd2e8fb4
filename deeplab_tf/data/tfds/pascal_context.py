"""`pascal_context`: PASCAL-Context, the 59 most frequent classes + background (60 classes).

Manual files: `VOCtrainval_03-May-2010.tar` (images and split lists) and the Context release's
`trainval.tar.gz` (https://cs.stanford.edu/~roozbeh/pascal-context/), which holds
`trainval/<id>.mat` with variable `LabelMap`: uint16 [H, W], values are the line numbers of the
release's `labels.txt` (1 "accordion" .. 459 "wood"; 0 = unlabelled).

Classes: label 0 = background (every pixel that is not one of the 59, unlabelled included); labels
1..59 = the 59 classes in alphabetical order, which is the order of the `labels.txt` ids below.
This is the 60-class setup of the DeepLab/PSPNet/EncNet literature and produces the same
labels as the Detail-API converters (`trainval_merged.json`) of PyTorch-Encoding and
mmsegmentation (`PascalContextDataset`), whose id list `_mapping` is `CONTEXT_IDS` below.
Nothing is ignored (no 255).

Splits: `train` (4,998) and `val` (5,105) = VOC2010 `ImageSets/Main/{train,val}.txt`, the
10,103 trainval images Context annotates; image `JPEGImages/<id>.jpg`.
"""

from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.data.tfds import label_io, manual_files
from deeplab_tf.data.tfds.segmentation_builder import Example, SegmentationBuilder

CONTEXT_CLASSES = {  # labels.txt id -> name, in label order 1..59
    2: "aeroplane", 9: "bag", 18: "bed", 19: "bedclothes", 22: "bench", 23: "bicycle",
    25: "bird", 31: "boat", 33: "book", 34: "bottle", 44: "building", 45: "bus", 46: "cabinet",
    59: "car", 65: "cat", 68: "ceiling", 72: "chair", 80: "cloth", 85: "computer", 98: "cow",
    104: "cup", 105: "curtain", 113: "dog", 115: "door", 144: "fence", 158: "floor",
    159: "flower", 162: "food", 187: "grass", 189: "ground", 207: "horse", 220: "keyboard",
    232: "light", 258: "motorbike", 259: "mountain", 260: "mouse", 284: "person", 295: "plate",
    296: "platform", 308: "pottedplant", 324: "road", 326: "rock", 347: "sheep", 349: "shelves",
    354: "sidewalk", 355: "sign", 360: "sky", 366: "snow", 368: "sofa", 397: "table",
    415: "track", 416: "train", 420: "tree", 424: "truck", 427: "tvmonitor", 440: "wall",
    445: "water", 454: "window", 458: "wood",
}
CONTEXT_IDS = tuple(CONTEXT_CLASSES)
NUM_CONTEXT_LABELS = 459
"""Number of labels in the full Context release (`labels.txt`); LabelMap values are 0..459."""

CONTEXT_INFO = DatasetInfo(
    name="pascal_context",
    class_names=("background",) + tuple(CONTEXT_CLASSES.values()),
    palette=label_io.voc_colormap(len(CONTEXT_CLASSES) + 1),
)

CONTEXT_TRAINVAL = manual_files.ManualFile(
    description="PASCAL-Context full annotations (trainval/<id>.mat, variable LabelMap)",
    archives=("trainval.tar.gz", "pascal_context_trainval.tar.gz"),
    folders=("trainval",),
    url="https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",
)

_TABLE = label_io.lookup_table(
    {**{raw: 0 for raw in range(NUM_CONTEXT_LABELS + 1)},
     **{raw: index for index, raw in enumerate(CONTEXT_IDS, start=1)}},
    size=NUM_CONTEXT_LABELS + 1,
)


class PascalContext(SegmentationBuilder):
    """PASCAL-Context: VOC2010 images, 59 most frequent classes + background (label 0)."""

    CLASSES = CONTEXT_INFO
    MANUAL_FILES = {"voc": manual_files.VOC2010_TRAINVAL, "context": CONTEXT_TRAINVAL}
    MANUAL_DOWNLOAD_INSTRUCTIONS = manual_files.instructions(MANUAL_FILES.values())
    HOMEPAGE = "https://cs.stanford.edu/~roozbeh/pascal-context/"
    CITATION = """@inproceedings{mottaghi2014role,
  author = {Mottaghi, Roozbeh and Chen, Xianjie and Liu, Xiaobai and Cho, Nam-Gyu and Lee,
            Seong-Whan and Fidler, Sanja and Urtasun, Raquel and Yuille, Alan},
  title = {The Role of Context for Object Detection and Semantic Segmentation in the Wild},
  booktitle = {CVPR}, year = {2014}}"""

    def _split_generators(self, dl_manager):
        roots = manual_files.locate(dl_manager, self.MANUAL_FILES, self.name)
        voc, context = roots["voc"], roots["context"]

        def examples(split):
            ids = label_io.read_ids(voc / "ImageSets" / "Main" / f"{split}.txt")
            return [
                Example(i, str(voc / "JPEGImages" / f"{i}.jpg"), str(context / f"{i}.mat"))
                for i in ids
            ]

        return {split: self._generate_examples(examples(split)) for split in ("train", "val")}

    def _read_label(self, example, size):
        raw = label_io.read_mat(example.label, "LabelMap")
        return label_io.map_values(raw, _TABLE, example.label, f"0..{NUM_CONTEXT_LABELS}")
