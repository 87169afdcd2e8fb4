"""`voc2012_segmentation` on fake VOC 2012 + SBD archives in the upstream layout."""

import numpy as np
import pytest
import scipy.sparse

VOC_TRAIN = ["2007_000032", "2007_000039"]
VOC_VAL = ["2007_000033", "2007_000042"]
SBD_TRAIN = ["2007_000032", "2007_000033", "2008_000002"]  # a VOC train id and a VOC val id
SBD_VAL = ["2008_000003", "2007_000042"]  # a VOC val id
SIZES = {"2007_000032": (10, 12), "2007_000039": (9, 14), "2007_000033": (11, 8),
         "2007_000042": (8, 8), "2008_000002": (12, 10), "2008_000003": (7, 9)}


def voc_label(size, seed):
    """Class indices in 0..20 with a 255 border, as in SegmentationClass."""
    label = np.random.default_rng(seed).integers(0, 21, size).astype(np.uint8)
    label[0, :] = 255
    return label


def sbd_mat(upstream, path, segmentation):
    """An SBD cls/*.mat: struct GTcls with Boundaries (21x1 cell of sparse), Segmentation, CategoriesPresent."""
    boundaries = np.empty((21, 1), object)
    for index in range(21):
        boundaries[index, 0] = scipy.sparse.csc_matrix(np.zeros(segmentation.shape))
    present = np.unique(segmentation[segmentation > 0]).astype(np.uint8)
    upstream.mat(path, {"GTcls": {"Boundaries": boundaries, "Segmentation": segmentation,
                                  "CategoriesPresent": present}})


def write_voc(upstream, root, *, label_overrides=None, skip_label=None):
    """Writes VOCdevkit/VOC2012 under root/src; returns that source folder."""
    voc = root / "src" / "VOCdevkit" / "VOC2012"
    for index, image_id in enumerate(VOC_TRAIN + VOC_VAL + ["2008_000002", "2008_000003"]):
        upstream.image(str(voc / "JPEGImages" / f"{image_id}.jpg"), *SIZES[image_id], seed=index)
    for index, image_id in enumerate(VOC_TRAIN + VOC_VAL):
        if image_id == skip_label:
            continue
        label = (label_overrides or {}).get(image_id, voc_label(SIZES[image_id], index))
        upstream.palette_png(str(voc / "SegmentationClass" / f"{image_id}.png"), label)
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n".join(VOC_TRAIN) + "\n")
    (lists / "val.txt").write_text("\n".join(VOC_VAL) + "\n")
    (lists / "trainval.txt").write_text("\n".join(sorted(VOC_TRAIN + VOC_VAL)) + "\n")
    return root / "src"


def write_sbd(upstream, root, *, segmentation_overrides=None):
    dataset = root / "sbd_src" / "benchmark_RELEASE" / "dataset"
    for index, image_id in enumerate(sorted(set(SBD_TRAIN + SBD_VAL))):
        upstream.image(str(dataset / "img" / f"{image_id}.jpg"), *SIZES[image_id], seed=10 + index)
        segmentation = np.full(SIZES[image_id], 7, np.uint8)
        segmentation[:, 0] = 0
        segmentation = (segmentation_overrides or {}).get(image_id, segmentation)
        sbd_mat(upstream, str(dataset / "cls" / f"{image_id}.mat"), segmentation)
    (dataset / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
    (dataset / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    return root / "sbd_src"


@pytest.fixture
def voc_manual(tmp_path, upstream):
    """A manual dir holding VOCtrainval_11-May-2012.tar and benchmark.tgz."""
    manual = tmp_path / "manual"
    upstream.tar(str(manual / "VOCtrainval_11-May-2012.tar"), str(write_voc(upstream, tmp_path)))
    upstream.tar(str(manual / "benchmark.tgz"), str(write_sbd(upstream, tmp_path)))
    return manual


def test_splits_counts_and_train_aug_excludes_val(voc_manual, prepare, read):
    builder = prepare("voc2012_segmentation", voc_manual)
    splits = {name: read(builder, name) for name in ("train", "val", "train_aug")}
    assert sorted(splits["train"]) == VOC_TRAIN and sorted(splits["val"]) == VOC_VAL
    assert sorted(splits["train_aug"]) == ["2007_000032", "2007_000039", "2008_000002", "2008_000003"]
    assert not set(splits["train_aug"]) & set(VOC_VAL)
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 2, "val": 2, "train_aug": 4}


def test_labels_are_palette_indices_and_sbd_classes(voc_manual, prepare, read):
    builder = prepare("voc2012_segmentation", voc_manual)
    train, train_aug = read(builder, "train"), read(builder, "train_aug")
    image, label = train["2007_000032"]
    np.testing.assert_array_equal(label, voc_label(SIZES["2007_000032"], 0))  # indices, not colours
    assert image.shape == SIZES["2007_000032"] + (3,)
    # An id in VOC train keeps its VOC label (with the 255 border) in train_aug, not SBD's.
    np.testing.assert_array_equal(train_aug["2007_000032"][1], label)
    # SBD-only ids take GTcls.Segmentation.
    sbd_label = train_aug["2008_000002"][1]
    assert set(np.unique(sbd_label)) == {0, 7} and sbd_label.shape == SIZES["2008_000002"]


def test_info_records_classes_palette_and_ignore(voc_manual, prepare):
    metadata = prepare("voc2012_segmentation", voc_manual).info.metadata
    assert len(metadata["class_names"]) == 21 and metadata["class_names"][15] == "person"
    assert metadata["palette"][1] == [128, 0, 0] and metadata["ignore_label"] == 255


def test_extracted_folders_work_like_archives(tmp_path, upstream, prepare, read):
    manual = tmp_path / "manual"
    write_voc(upstream, tmp_path).rename(manual)
    (write_sbd(upstream, tmp_path) / "benchmark_RELEASE").rename(manual / "benchmark_RELEASE")
    builder = prepare("voc2012_segmentation", manual)
    assert builder.info.splits["train_aug"].num_examples == 4


def test_missing_sbd_names_the_file_its_origin_and_the_manual_dir(tmp_path, upstream, prepare):
    manual = tmp_path / "manual"
    upstream.tar(str(manual / "VOCtrainval_11-May-2012.tar"), str(write_voc(upstream, tmp_path)))
    with pytest.raises(FileNotFoundError, match=r"(?s)benchmark\.tgz.*semantic_contours.*" + str(manual)):
        prepare("voc2012_segmentation", manual)


def test_sbd_value_outside_the_classes_names_the_mat(tmp_path, upstream, prepare):
    manual = tmp_path / "manual"
    upstream.tar(str(manual / "VOCtrainval_11-May-2012.tar"), str(write_voc(upstream, tmp_path)))
    bad = np.full(SIZES["2008_000003"], 30, np.uint8)
    sbd = write_sbd(upstream, tmp_path, segmentation_overrides={"2008_000003": bad})
    upstream.tar(str(manual / "benchmark.tgz"), str(sbd))
    with pytest.raises(ValueError, match=r"2008_000003\.mat: label values \[30\]"):
        prepare("voc2012_segmentation", manual)


def test_val_image_without_label_names_it_and_leaves_nothing(tmp_path, upstream, prepare, nothing_prepared):
    manual = tmp_path / "manual"
    upstream.tar(str(manual / "VOCtrainval_11-May-2012.tar"),
                 str(write_voc(upstream, tmp_path, skip_label="2007_000042")))
    upstream.tar(str(manual / "benchmark.tgz"), str(write_sbd(upstream, tmp_path)))
    with pytest.raises(FileNotFoundError, match=r"label file .*SegmentationClass/2007_000042\.png does not exist"):
        prepare("voc2012_segmentation", manual)
    nothing_prepared("voc2012_segmentation", str(tmp_path / "tfds"))
