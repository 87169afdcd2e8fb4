import os

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_tf.data.camvid_folder import CAMVID_INFO, CamVidFolder, load_pair


def write_pair(folder, stem, image_size=(4, 6), label=None):
    """Writes folder/img/<stem>.png (random RGB) and folder/ann/<stem>.png; returns a list line."""
    for sub in ("img", "ann"):
        os.makedirs(folder / sub, exist_ok=True)
    image = np.random.default_rng(0).integers(0, 256, (*image_size, 3), dtype=np.uint8)
    if label is None:
        label = np.arange(np.prod(image_size)).reshape(image_size) % 12
    cv2.imwrite(str(folder / "img" / f"{stem}.png"), image)
    cv2.imwrite(str(folder / "ann" / f"{stem}.png"), np.asarray(label, np.uint8))
    return f"img/{stem}.png ann/{stem}.png\n"


def write_list(folder, split, lines):
    (folder / f"{split}.txt").write_text("".join(lines))


def pair_paths(folder, stem="a"):
    return tuple(tf.constant(str(folder / sub / f"{stem}.png")) for sub in ("img", "ann"))


def only_example(folder, split="train"):
    return CamVidFolder(str(folder)).examples(split).get_single_element()


def test_tiny_folder_maps_void_to_ignore(tmp_path):
    label = np.array([[0, 10, 11, 255, 3, 3]] * 4)
    write_list(tmp_path, "train", [write_pair(tmp_path, "a", label=label)])
    example = only_example(tmp_path)
    assert example["image"].shape == (4, 6, 3) and example["image"].dtype == tf.uint8
    assert example["label"].dtype == tf.uint8
    np.testing.assert_array_equal(example["label"][0], [0, 10, 255, 255, 3, 3])
    assert example["name"].numpy().decode() == str(tmp_path / "img" / "a.png")


def test_load_pair_eager_and_in_map(tmp_path, run):
    write_pair(tmp_path, "a", label=np.full((4, 6), 11))
    example = run(load_pair, *pair_paths(tmp_path))
    assert example["image"].shape == (4, 6, 3) and (example["label"] == 255).all()


def test_a_colour_label_is_refused_naming_it(tmp_path):
    write_pair(tmp_path, "a")
    colour = np.zeros((4, 6, 3), np.uint8)
    colour[..., 2] = 128  # CamVid's colour for Road is (128, 64, 128); grey levels would read it as a class
    cv2.imwrite(str(tmp_path / "ann" / "a.png"), colour)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"camvid_folder: label {tmp_path / 'ann' / 'a.png'} has 3 channels; expected one"):
        load_pair(*pair_paths(tmp_path))


def test_absolute_segnet_paths_fall_back_to_last_two_components(tmp_path):
    write_pair(tmp_path, "a")
    write_list(tmp_path, "val", ["/SegNet/CamVid/img/a.png /SegNet/CamVid/ann/a.png\n", "\n"])
    assert CamVidFolder(str(tmp_path)).pairs("val") == [
        (str(tmp_path / "img" / "a.png"), str(tmp_path / "ann" / "a.png"))
    ]


def test_max_examples_takes_first_pairs(tmp_path):
    write_list(tmp_path, "train", [write_pair(tmp_path, stem) for stem in "abc"])
    examples = CamVidFolder(str(tmp_path), max_examples=2).examples("train")
    names = [e["name"].numpy() for e in examples]
    assert [os.path.basename(n.decode()) for n in names] == ["a.png", "b.png"]


@pytest.mark.parametrize("data_dir", ["", None])
def test_unset_data_dir_explains_override_and_layout(data_dir):
    expected = r"data\.data_dir.*--override=data\.data_dir=PATH.*train\.txt"
    with pytest.raises(ValueError, match=expected):
        CamVidFolder(data_dir)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*not a folder"):
        CamVidFolder(str(tmp_path / "nowhere"))


def test_missing_list_file_names_it_and_found_splits(tmp_path):
    write_list(tmp_path, "train", [write_pair(tmp_path, "a")])
    with pytest.raises(FileNotFoundError, match=r"val\.txt.*\['train'\]"):
        CamVidFolder(str(tmp_path)).examples("val")


def test_missing_listed_file(tmp_path):
    write_list(tmp_path, "train", [write_pair(tmp_path, "a"), "img/a.png ann/gone.png\n"])
    with pytest.raises(FileNotFoundError, match=r"train\.txt line 2 lists 'ann/gone\.png'"):
        CamVidFolder(str(tmp_path)).pairs("train")


def test_malformed_line(tmp_path):
    write_list(tmp_path, "train", [write_pair(tmp_path, "a"), "img/a.png\n"])
    with pytest.raises(ValueError, match=r"train\.txt line 2: expected"):
        CamVidFolder(str(tmp_path)).pairs("train")


def test_empty_list(tmp_path):
    write_list(tmp_path, "train", ["\n"])
    with pytest.raises(ValueError, match="lists no pairs"):
        CamVidFolder(str(tmp_path)).pairs("train")


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    line = write_pair(tmp_path, "a", label=np.zeros((4, 5)))
    write_list(tmp_path, "train", [line])
    expected = r"image \S*img/a\.png is 4x6 but label \S*ann/a\.png is 4x5"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        only_example(tmp_path)


def test_label_value_out_of_range_names_file_and_value(tmp_path):
    label = np.zeros((4, 6))
    label[2, 3] = 40
    write_list(tmp_path, "train", [write_pair(tmp_path, "a", label=label)])
    expected = r"label \S*ann/a\.png has value 40; expected 0\.\.10"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        only_example(tmp_path)


def test_real_folder_counts(camvid_dir):
    source = CamVidFolder(camvid_dir)
    assert source.info.num_classes == 11 and source.info.class_names[0] == "Sky"
    assert source.examples("train").cardinality() == 367
    assert source.examples("val").cardinality() == 101


@pytest.mark.parametrize("split", ["train", "val"])
def test_real_folder_examples(camvid_dir, split):
    for example in CamVidFolder(camvid_dir, max_examples=2).examples(split):
        assert example["image"].shape == (360, 480, 3) and example["label"].shape == (360, 480)
        values = set(np.unique(example["label"]))
        assert values <= set(range(CAMVID_INFO.num_classes)) | {255}
        assert os.path.isfile(example["name"].numpy().decode())


def test_load_pair_checks_values_eager_and_in_map(tmp_path, run):
    write_pair(tmp_path, "a", label=np.full((4, 6), 12))
    with pytest.raises(tf.errors.InvalidArgumentError, match="has value 12"):
        run(load_pair, *pair_paths(tmp_path))


def write_16_bit_label(folder, label, stem="a"):
    """Writes folder/img/<stem>.png and, over its 8-bit label, `label` as a 16-bit PNG."""
    write_pair(folder, stem, image_size=np.shape(label))
    path = folder / "ann" / f"{stem}.png"
    cv2.imwrite(str(path), np.asarray(label, np.uint16))
    assert path.read_bytes()[24] == 16  # the PNG's bit depth


def test_a_16_bit_label_is_read_as_stored(tmp_path, run):
    """TensorFlow's decoder scales a 16-bit PNG to 8 bits, which would read these classes as 0."""
    write_16_bit_label(tmp_path, [[0, 10, 11, 255, 3, 7]] * 4)
    example = run(load_pair, *pair_paths(tmp_path))
    assert example["label"].dtype == tf.uint8
    np.testing.assert_array_equal(example["label"], [[0, 10, 255, 255, 3, 7]] * 4)


def test_a_16_bit_label_value_beyond_8_bits_is_refused_naming_it(tmp_path, run):
    label = np.zeros((4, 6))
    label[1, 2] = 256 + 3  # 8 bits of it would be class 3
    write_16_bit_label(tmp_path, label)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"label {tmp_path / 'ann' / 'a.png'} has value 259;"):
        run(load_pair, *pair_paths(tmp_path))


@pytest.mark.parametrize("what, sub", [("image", "img"), ("label", "ann")])
def test_a_png_cut_short_is_refused_naming_it(tmp_path, what, sub):
    """TensorFlow's decoder says only "Invalid PNG data, size N"; the reader names the file."""
    write_list(tmp_path, "train", [write_pair(tmp_path, "a", image_size=(40, 60))])
    path = tmp_path / sub / "a.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"camvid_folder: {what} {path} is cut short: a PNG of {len(data) // 2} bytes"):
        only_example(tmp_path)


def test_a_png_with_bytes_after_its_end_still_loads(tmp_path):
    """Decoders ignore bytes after the IEND chunk; so does the cut-short check."""
    write_list(tmp_path, "train", [write_pair(tmp_path, "a")])
    path = tmp_path / "img" / "a.png"
    expected = cv2.imread(str(path))[..., ::-1]
    path.write_bytes(path.read_bytes() + b"trailing bytes" * 10)
    np.testing.assert_array_equal(only_example(tmp_path)["image"].numpy(), expected)


def damaged_png(data: bytes) -> bytes:
    """`data` (a PNG) with bytes of its first IDAT chunk's data changed: signature, header and
    IEND intact, so it is not cut short, but it fails its CRC and decompression."""
    start = data.index(b"IDAT") + 6
    return data[:start] + bytes(b ^ 0xFF for b in data[start:start + 8]) + data[start + 8:]


@pytest.mark.parametrize("what, sub", [("image", "img"), ("label", "ann")])
@pytest.mark.parametrize("damage", [damaged_png, lambda data: b"not an image\n"], ids=["damaged_png", "not_an_image"])
def test_a_file_that_cannot_be_decoded_is_refused_naming_it(tmp_path, run, what, sub, damage):
    """TensorFlow's decoders say only e.g. "Invalid PNG data, size N"; the reader names the file."""
    write_pair(tmp_path, "a", image_size=(40, 60))
    path = tmp_path / sub / "a.png"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"camvid_folder: {what} {path} cannot be decoded"):
        run(load_pair, *pair_paths(tmp_path))


def write_palette_label(folder, label):
    """Writes folder/ann/a.png as a palette ('P') PNG whose indices are `label`, with colours
    that are no class index (VOC's SegmentationClass files are such PNGs)."""
    image = Image.fromarray(np.asarray(label, np.uint8), mode="P")
    image.putpalette([c for index in range(256) for c in ((37 * index) % 256, (101 * index) % 256, 255)])
    path = folder / "ann" / "a.png"
    image.save(path)
    assert path.read_bytes()[25] == 3  # the PNG's colour type: palette
    return path


def test_a_palette_label_is_read_as_its_indices(tmp_path, run):
    """TensorFlow's decoders give a palette PNG's colours (3 channels), which the reader would
    refuse as a colour-coded label; its indices are the classes."""
    write_pair(tmp_path, "a")
    write_palette_label(tmp_path, [[0, 10, 11, 255, 3, 7]] * 4)
    example = run(load_pair, *pair_paths(tmp_path))
    assert example["label"].dtype == tf.uint8
    np.testing.assert_array_equal(example["label"], [[0, 10, 255, 255, 3, 7]] * 4)


def test_a_palette_label_is_checked_as_any_other(tmp_path, run):
    """Its indices must be classes; a damaged one is named as a file that cannot be decoded."""
    write_pair(tmp_path, "a")
    path = write_palette_label(tmp_path, [[0, 12, 1, 1, 1, 1]] * 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"label {path} has value 12;"):
        run(load_pair, *pair_paths(tmp_path))
    path.write_bytes(damaged_png(path.read_bytes()))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"camvid_folder: label {path} cannot be decoded"):
        run(load_pair, *pair_paths(tmp_path))
