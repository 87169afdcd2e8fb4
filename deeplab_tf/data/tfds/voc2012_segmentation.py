"""`voc2012_segmentation`: PASCAL VOC 2012 segmentation (21 classes) with the SBD-augmented set.

Manual files: `VOCtrainval_11-May-2012.tar` and SBD's `benchmark.tgz` (or the extracted
`VOCdevkit/VOC2012/` and `benchmark_RELEASE/` folders).

Splits (counts with the genuine files):

- `train` (1,464) and `val` (1,449): `ImageSets/Segmentation/{train,val}.txt`; image
  `JPEGImages/<id>.jpg`, label `SegmentationClass/<id>.png`, a palette PNG whose indices are the
  classes (0 background, 1..20) and 255 the void border.
- `train_aug` (10,582): VOC `train` + SBD `dataset/train.txt` + SBD `dataset/val.txt`, minus every
  VOC `val` image. Ids in VOC `train` keep their VOC image and label (with the 255 border); the
  others use SBD's `dataset/img/<id>.jpg` and `dataset/cls/<id>.mat` (`GTcls.Segmentation`,
  uint8 class indices 0..20, no void), read with scipy.
"""

from deeplab_tf.data.dataset_info import IGNORE_LABEL, DatasetInfo
from deeplab_tf.data.tfds import label_io, manual_files
from deeplab_tf.data.tfds.segmentation_builder import Example, SegmentationBuilder

VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOC_INFO = DatasetInfo(
    name="voc2012_segmentation",
    class_names=VOC_CLASS_NAMES,
    palette=label_io.voc_colormap(len(VOC_CLASS_NAMES)),
)

VOC2012_TRAINVAL = manual_files.ManualFile(
    description="PASCAL VOC 2012 trainval (JPEGImages, SegmentationClass, ImageSets/Segmentation)",
    archives=("VOCtrainval_11-May-2012.tar",),
    folders=("VOCdevkit/VOC2012", "VOC2012"),
    url="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
)
SBD = manual_files.ManualFile(
    description="Semantic Boundaries Dataset, Hariharan et al. 2011 (dataset/img, dataset/cls/*.mat, "
    "dataset/train.txt, dataset/val.txt)",
    archives=("benchmark.tgz",),
    folders=("benchmark_RELEASE",),
    url="http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
    "benchmark.tgz",
)

_VOC_TABLE = label_io.lookup_table({**{c: c for c in range(21)}, IGNORE_LABEL: IGNORE_LABEL})


class Voc2012Segmentation(SegmentationBuilder):
    """PASCAL VOC 2012 semantic segmentation, 21 classes (255 = void border), with `train_aug`
    (VOC train + SBD train/val minus VOC val)."""

    CLASSES = VOC_INFO
    MANUAL_FILES = {"voc": VOC2012_TRAINVAL, "sbd": SBD}
    MANUAL_DOWNLOAD_INSTRUCTIONS = manual_files.instructions(MANUAL_FILES.values())
    HOMEPAGE = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
    CITATION = """@misc{pascal-voc-2012,
  author = {Everingham, M. and Van~Gool, L. and Williams, C. K. I. and Winn, J. and Zisserman, A.},
  title = {The {PASCAL} {V}isual {O}bject {C}lasses {C}hallenge 2012 {(VOC2012)} {R}esults}}
@inproceedings{hariharan2011semantic,
  author = {Hariharan, Bharath and Arbel{\\'a}ez, Pablo and Bourdev, Lubomir and Maji, Subhransu
            and Malik, Jitendra},
  title = {Semantic contours from inverse detectors}, booktitle = {ICCV}, year = {2011}}"""

    def _split_generators(self, dl_manager):
        roots = manual_files.locate(dl_manager, self.MANUAL_FILES, self.name)
        voc, sbd = roots["voc"], roots["sbd"] / "dataset"
        lists = voc / "ImageSets" / "Segmentation"
        train, val = label_io.read_ids(lists / "train.txt"), label_io.read_ids(lists / "val.txt")
        sbd_ids = label_io.read_ids(sbd / "train.txt") + label_io.read_ids(sbd / "val.txt")

        def voc_example(image_id):
            return Example(
                image_id,
                str(voc / "JPEGImages" / f"{image_id}.jpg"),
                str(voc / "SegmentationClass" / f"{image_id}.png"),
            )

        def sbd_example(image_id):
            return Example(
                image_id, str(sbd / "img" / f"{image_id}.jpg"), str(sbd / "cls" / f"{image_id}.mat")
            )

        voc_train = set(train)
        train_aug = sorted((voc_train | set(sbd_ids)) - set(val))
        return {
            "train": self._generate_examples([voc_example(i) for i in train]),
            "val": self._generate_examples([voc_example(i) for i in val]),
            "train_aug": self._generate_examples(
                [voc_example(i) if i in voc_train else sbd_example(i) for i in train_aug]
            ),
        }

    def _read_label(self, example, size):
        if example.label.endswith(".mat"):
            gt = label_io.read_mat(example.label, "GTcls")
            raw = getattr(gt, "Segmentation", None)
            if raw is None:
                raise ValueError(f"{example.label}: GTcls has no field 'Segmentation'")
        else:
            raw = label_io.read_png_label(example.label)
        return label_io.map_values(raw, _VOC_TABLE, example.label, "0..20 or 255")
