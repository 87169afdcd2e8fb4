"""The registry of pretrained models deeplab-tf knows: what each is, where it was published, how
it scored, which experiment builds it and which files it needs.

Two kinds of entries:
- official models (importer "tfjs_graph", "tflite", "tf1_checkpoint"): nothing is downloaded; a
  user fetches the files once and passes their local path, e.g.
  `--override=train.init_checkpoint=PATH` (training), `--checkpoint=PATH` (evaluate, export; see
  `deeplab_tf.training.checkpoints.restore_model`);
- models deeplab-tf trained and ships (importer "weights_file"): a file in the repository's
  `weights/` folder (`deeplab_tf.models.weights_file`), taken by name: `--checkpoint=NAME`.
`python -m deeplab_tf.cli.zoo` lists them.
"""

import dataclasses
import difflib
import glob
import hashlib
import os

TFJS_FILES = ("model.json", "group1-shard1of3", "group1-shard2of3", "group1-shard3of3")


@dataclasses.dataclass(frozen=True)
class PretrainedModel:
    """One published model.

    Args:
        name: str. The registry name.
        experiment: str. The experiment (`experiments/`) that builds its architecture.
        published_as: str. The official file or tarball name.
        url: str. Where it was published.
        files: tuple of str. The files the importer reads, relative to the path a user passes
            (glob patterns where the published name varies).
        sha256: dict. File name -> sha256 where known ({} = not known).
        miou: float. The official mIoU (percent); 0 = not published for this file.
        protocol: str. What `miou` measured: dataset split, output stride, scales, flips, source.
        importer: str. The reader that imports it: "tfjs_graph", "tflite", "tf1_checkpoint".
        imports_here: bool. Whether this version of deeplab-tf imports it (tested on the file
            itself or on a file written with the official names).
    """

    name: str
    experiment: str
    published_as: str
    url: str
    files: tuple
    sha256: dict
    miou: float
    protocol: str
    importer: str
    imports_here: bool


WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "weights")
"""The repository's folder of shipped weights files (present in a clone or an editable install)."""
SHIPPED_IMPORTER = "weights_file"
MODEL_ZOO_DOC = "tensorflow/models research/deeplab/g3doc/model_zoo.md"
ZOO_URL = "http://download.tensorflow.org/models/"

PRETRAINED_MODELS = {
    model.name: model
    for model in (
        PretrainedModel(
            name="deeplabv3_mnv2_pascal_trainval_tfjs",
            experiment="voc_v3_mnv2_official",
            published_as="deeplabv3_mnv2_pascal_trainval_2018_01_29.tar.gz, frozen graph converted by "
                         "tensorflowjs 0.8.0 (npm @codait/max-image-segmenter 0.3.0, model/)",
            url=ZOO_URL + "deeplabv3_mnv2_pascal_trainval_2018_01_29.tar.gz",
            files=TFJS_FILES,
            sha256={
                "model.json": "d454099ce682e2f7cb5689e9bf167f8437f1c84171982d980758b045d310aa80",
                "group1-shard1of3": "e1501ed0cb05c223055a6dc722bbec872dadccfebb770aecf59ad830c45b0117",
                "group1-shard2of3": "a97acd1e7e2108776e9d112b21211e17c3ce66c72eca4fde8352784dfbb042e9",
                "group1-shard3of3": "f6caff3822c8cfa842f8f82c8f77019b550c490d6b24c17528fd3c9d03627ea4",
            },
            miou=80.25,
            protocol=f"VOC 2012 test, OS 8, scales 0.5:0.25:1.75 + flip, trained on train_aug + trainval ({MODEL_ZOO_DOC})",
            importer="tfjs_graph",
            imports_here=True,
        ),
        PretrainedModel(
            name="deeplabv3_mnv2_dm05_257_tflite",
            experiment="voc_v3_mnv2_dm05_official",
            published_as="deeplabv3_257_mv_gpu.tflite (float; MobileNetV2 depth 0.5, OS 8, 257x257 input)",
            url="https://storage.googleapis.com/download.tensorflow.org/models/tflite/gpu/deeplabv3_257_mv_gpu.tflite",
            files=("deeplabv3_257_mv_gpu.tflite",),
            sha256={"deeplabv3_257_mv_gpu.tflite": "68a539782c2c6a72f8aac3724600124a85ed977162b44e84cbae5db717c933c6"},
            miou=0.0,
            protocol="not published for this file; its checkpoint family mobilenetv2_dm05_coco_voc_trainaug "
                     "scores 70.19% (VOC 2012 val, OS 16, one scale; research/deeplab/g3doc/quantize.md)",
            importer="tflite",
            imports_here=True,
        ),
        PretrainedModel(
            name="deeplabv3_mnv2_pascal_train_aug",
            experiment="voc_v3_mnv2_official",
            published_as="deeplabv3_mnv2_pascal_train_aug_2018_01_29.tar.gz (TF1 checkpoint model.ckpt-*)",
            url=ZOO_URL + "deeplabv3_mnv2_pascal_train_aug_2018_01_29.tar.gz",
            files=("model.ckpt-*.index", "model.ckpt-*.data-00000-of-00001"),
            sha256={},
            miou=75.32,
            protocol=f"VOC 2012 val, OS 16, one scale, no flip (77.33 at OS 8, 0.5:0.25:1.75 + flip; {MODEL_ZOO_DOC})",
            importer="tf1_checkpoint",
            imports_here=True,
        ),
        PretrainedModel(
            name="deeplabv3_pascal_train_aug",
            experiment="voc_v3plus_xception65_official",
            published_as="deeplabv3_pascal_train_aug_2018_01_04.tar.gz (Xception-65 DeepLabv3+)",
            url=ZOO_URL + "deeplabv3_pascal_train_aug_2018_01_04.tar.gz",
            files=("model.ckpt*.index", "model.ckpt*.data-00000-of-00001"),
            sha256={},
            miou=82.20,
            protocol=f"VOC 2012 val, OS 16, one scale, no flip (83.58 at OS 8, 0.5:0.25:1.75 + flip; {MODEL_ZOO_DOC})",
            importer="tf1_checkpoint",
            imports_here=True,
        ),
        PretrainedModel(
            name="deeplabv3_cityscapes_train",
            experiment="cityscapes_v3plus_xception65_official",
            published_as="deeplabv3_cityscapes_train_2018_02_06.tar.gz (Xception-65 DeepLabv3+)",
            url=ZOO_URL + "deeplabv3_cityscapes_train_2018_02_06.tar.gz",
            files=("model.ckpt*.index", "model.ckpt*.data-00000-of-00001"),
            sha256={},
            miou=78.79,
            protocol=f"Cityscapes val, OS 16, one scale, no flip (80.42 at OS 8, 0.75:0.25:1.25 + flip; {MODEL_ZOO_DOC})",
            importer="tf1_checkpoint",
            imports_here=True,
        ),
        PretrainedModel(
            name="camvid_mnv2_v3plus",
            experiment="camvid_mnv2_v3plus",
            published_as="deeplab-tf weights/camvid_mnv2_v3plus.npz (float16): DeepLabv3+ MobileNetV2 "
                         "trained from scratch on CamVid train (bench/camvid.sh, 5000 steps)",
            url="weights/camvid_mnv2_v3plus.npz in the deeplab-tf repository",
            files=("camvid_mnv2_v3plus.npz",),
            sha256={"camvid_mnv2_v3plus.npz": "b9508443436788730f2617abea77c0dc7e1a51f8bc02790694603a6c797912a4"},
            miou=58.27,
            protocol="CamVid val (101 images, 11 classes), OS 16, one scale, no flip; 60.80 with 6 scales + flip "
                     "(deeplab-tf, BENCHMARKS.md 'CamVid from scratch')",
            importer=SHIPPED_IMPORTER,
            imports_here=True,
        ),
        PretrainedModel(
            name="camvid_mnv2_voc_transfer",
            experiment="camvid_mnv2_voc_transfer",
            published_as="deeplab-tf weights/camvid_mnv2_voc_transfer.npz (float16): DeepLabv3+ MobileNetV2 "
                         "fine-tuned on CamVid train from deeplabv3_mnv2_pascal_trainval",
            url="weights/camvid_mnv2_voc_transfer.npz in the deeplab-tf repository",
            files=("camvid_mnv2_voc_transfer.npz",),
            sha256={"camvid_mnv2_voc_transfer.npz": "6f3305b72ae58d9ec64106d4154fb628b24e7ef33d538a443ae600dac8f89ad7"},
            miou=68.91,
            protocol="CamVid val (101 images, 11 classes), OS 8, one scale, no flip; 67.54 at OS 16 "
                     "(deeplab-tf, BENCHMARKS.md 'CamVid from the official VOC model')",
            importer=SHIPPED_IMPORTER,
            imports_here=True,
        ),
    )
}


def get_pretrained(name: str) -> PretrainedModel:
    """Returns the registered model `name`; ValueError listing the names and the closest one."""
    if name not in PRETRAINED_MODELS:
        close = difflib.get_close_matches(name, PRETRAINED_MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown pretrained model {name!r}.{hint} Known: {', '.join(sorted(PRETRAINED_MODELS))}")
    return PRETRAINED_MODELS[name]


def file_sha256(path: str) -> str:
    """Returns the hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(model: PretrainedModel, path: str) -> list[str]:
    """Returns the problems of the local copy of `model` at `path`: missing files and sha256
    mismatches; [] when it is complete and every known checksum matches. `path` is a folder
    holding the model's `files`, or, for a model of one file, that file under any name (its
    own bytes are checked, not a file beside it).

    Raises ValueError naming `path` when it is a file and `model` has several files.
    """
    if not os.path.exists(path):
        return [f"{path} does not exist"]
    if os.path.isdir(path):
        found = {name: sorted(glob.glob(os.path.join(path, name))) for name in model.files}
    elif len(model.files) == 1:
        found = {model.files[0]: [path]}
    else:
        raise ValueError(f"{path} is a file, but {model.name} has {len(model.files)} files "
                         f"({', '.join(model.files)}): give the folder holding them")
    problems = []
    for name, matches in found.items():
        if not matches:
            problems.append(f"{os.path.join(path, name)} is missing")
        elif name in model.sha256 and (digest := file_sha256(matches[0])) != model.sha256[name]:
            problems.append(f"{matches[0]} has sha256 {digest}, published {model.sha256[name]}")
    return problems


def is_shipped(name: str) -> bool:
    """Returns True if `name` is a registered model that deeplab-tf ships as a weights file."""
    return name in PRETRAINED_MODELS and PRETRAINED_MODELS[name].importer == SHIPPED_IMPORTER


def shipped_file(name: str) -> str:
    """Returns the path of the weights file of the shipped model `name` in `WEIGHTS_DIR`.

    Raises ValueError for a name that is not a shipped model, FileNotFoundError naming the path
    when the file is not there (an install without the repository's `weights/` folder).
    """
    if not is_shipped(name):
        raise ValueError(f"{name!r} is not a model deeplab-tf ships; shipped: "
                         f"{', '.join(n for n in sorted(PRETRAINED_MODELS) if is_shipped(n)) or 'none'}")
    path = os.path.join(WEIGHTS_DIR, PRETRAINED_MODELS[name].files[0])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} (the weights of {name}) is missing: shipped weights live in the "
                                f"repository's weights/ folder; use a clone or `pip install -e .`")
    return path
