"""`ade20k`: ADE20K as in the SceneParsing benchmark (150 classes; `train` 20,210 / `val` 2,000).

Why not TFDS's `scene_parse150`: its builder downloads `ChallengeData2017/annotations_instance.tar`,
the instance-segmentation masks of the Places Challenge (red channel = one of 100 instance
categories, green = instance id), not the 150-class semantic labels DeepLab reports on.

Manual file: `ADEChallengeData2016.zip` (or its extracted `ADEChallengeData2016/` folder) with
`images/{training,validation}/<id>.jpg` and `annotations/{training,validation}/<id>.png`, where
0 = "other objects" and 1..150 the classes of `objectInfo150.csv`. Stored labels are value - 1
(0..149) and 0 -> 255 (ignored), the usual "reduce zero label" protocol.
"""

import os

from deeplab_tf.data.dataset_info import IGNORE_LABEL, DatasetInfo
from deeplab_tf.data.tfds import label_io, manual_files
from deeplab_tf.data.tfds.segmentation_builder import Example, SegmentationBuilder

ADE20K_CLASS_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
    "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board",
    "shower", "radiator", "glass", "clock", "flag",
)
ADE20K_INFO = DatasetInfo(
    name="ade20k",
    class_names=ADE20K_CLASS_NAMES,
    palette=label_io.voc_colormap(len(ADE20K_CLASS_NAMES) + 1)[1:],
)

ADE_CHALLENGE_2016 = manual_files.ManualFile(
    description="ADE20K SceneParsing release (images/ and annotations/, training and validation)",
    archives=("ADEChallengeData2016.zip",),
    folders=("ADEChallengeData2016",),
    url="http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
)

_TABLE = label_io.lookup_table(
    {0: IGNORE_LABEL, **{raw: raw - 1 for raw in range(1, len(ADE20K_CLASS_NAMES) + 1)}}
)


class Ade20k(SegmentationBuilder):
    """ADE20K SceneParsing (MIT), 150 classes; "other objects" (0) is ignored (255)."""

    CLASSES = ADE20K_INFO
    MANUAL_FILES = {"ade": ADE_CHALLENGE_2016}
    MANUAL_DOWNLOAD_INSTRUCTIONS = manual_files.instructions(MANUAL_FILES.values())
    HOMEPAGE = "http://sceneparsing.csail.mit.edu/"
    CITATION = """@inproceedings{zhou2017scene,
  author = {Zhou, Bolei and Zhao, Hang and Puig, Xavier and Fidler, Sanja and Barriuso, Adela
            and Torralba, Antonio},
  title = {Scene Parsing through ADE20K Dataset}, booktitle = {CVPR}, year = {2017}}"""

    def _split_generators(self, dl_manager):
        root = manual_files.locate(dl_manager, self.MANUAL_FILES, self.name)["ade"]

        def examples(folder):
            images = root / "images" / folder
            if not images.is_dir():
                raise FileNotFoundError(f"{self.name}: image folder {images} does not exist")
            stems = sorted(name[:-4] for name in os.listdir(images) if name.endswith(".jpg"))
            labels = root / "annotations" / folder
            return [Example(s, str(images / f"{s}.jpg"), str(labels / f"{s}.png")) for s in stems]

        return {
            "train": self._generate_examples(examples("training")),
            "val": self._generate_examples(examples("validation")),
        }

    def _read_label(self, example, size):
        raw = label_io.read_png_label(example.label)
        return label_io.map_values(raw, _TABLE, example.label, "0..150")
