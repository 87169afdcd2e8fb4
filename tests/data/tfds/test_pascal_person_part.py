"""`pascal_person_part` on a fake VOC2010 archive + PASCAL-Part `trainval.tar.gz` (anno .mat files)."""

import numpy as np
import pytest

SIZE = (6, 8)
SPLITS = {"train": ["2008_000001", "2008_000002", "2008_000003"], "val": ["2008_000004"]}


def mask(rows):
    """A uint8 SIZE mask that is 1 on `rows`."""
    values = np.zeros(SIZE, np.uint8)
    values[rows] = 1
    return values


def objects(*entries):
    """A MATLAB struct array anno.objects from (class, [(part_name, mask), ...]) entries."""
    array = np.zeros((1, len(entries)), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    for index, (name, parts) in enumerate(entries):
        part_array = np.zeros((0, 0))
        if parts:
            part_array = np.zeros((1, len(parts)), dtype=[("part_name", "O"), ("mask", "O")])
            for j, part in enumerate(parts):
                part_array[0, j] = part
        array[0, index] = (name, 15 if name == "person" else 12, np.ones(SIZE, np.uint8), part_array)
    return array


ANNOTATIONS = {
    # Two people (head, hair -> 1, neck -> 2, luarm -> 3, rhand -> 4, ruleg -> 5); the dog's head is not a person part.
    "2008_000001": objects(
        ("person", [("head", mask(0)), ("hair", mask(1)), ("neck", mask(2)), ("luarm", mask(3))]),
        ("dog", [("head", mask(5))]),
        ("person", [("rhand", mask(4)), ("ruleg", mask(5))]),
    ),
    "2008_000002": objects(("dog", [("head", mask(0))])),  # no person: not in the split
    "2008_000003": objects(("person", [])),  # a person without part annotations: not in the split
    "2008_000004": objects(("person", [("lfoot", mask(0))])),
}


def write_parts(upstream, root, annotations):
    for image_id, objs in annotations.items():
        upstream.mat(str(root / "parts" / "Annotations_Part" / f"{image_id}.mat"),
                     {"anno": {"imname": image_id, "objects": objs}})
    return root / "parts"


@pytest.fixture
def write_manual(tmp_path, upstream):
    def write(annotations=ANNOTATIONS):
        manual = tmp_path / "manual"
        sizes = {image_id: SIZE for image_id in ANNOTATIONS}
        upstream.tar(str(manual / "VOCtrainval_03-May-2010.tar"), upstream.voc2010(str(tmp_path / "voc"), SPLITS, sizes))
        upstream.tar(str(manual / "trainval.tar.gz"), str(write_parts(upstream, tmp_path, annotations)))
        return manual

    return write


def test_person_images_only_and_six_part_groups(write_manual, prepare, read):
    builder = prepare("pascal_person_part", write_manual())
    train, val = read(builder, "train"), read(builder, "val")
    assert sorted(train) == ["2008_000001"] and sorted(val) == ["2008_000004"]
    label = train["2008_000001"][1]
    np.testing.assert_array_equal(label[:, 0], [1, 1, 2, 3, 4, 5])
    assert label.shape == SIZE and set(np.unique(val["2008_000004"][1])) == {0, 6}
    names = builder.info.metadata["class_names"]
    assert names == ["background", "head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs"]


def test_published_id_lists_define_the_splits(write_manual, prepare, read):
    manual = write_manual()
    (manual / "train_id.txt").write_text("2008_000001\n2008_000003\n")
    (manual / "val_id.txt").write_text("2008_000004\n")
    builder = prepare("pascal_person_part", manual)
    train = read(builder, "train")
    assert sorted(train) == ["2008_000001", "2008_000003"]
    assert not train["2008_000003"][1].any()  # listed, no parts: all background


def test_unknown_part_name_names_the_file(write_manual, prepare):
    annotations = dict(ANNOTATIONS, **{"2008_000004": objects(("person", [("tail", mask(0))]))})
    with pytest.raises(ValueError, match=r"2008_000004\.mat: person part 'tail'"):
        prepare("pascal_person_part", write_manual(annotations))


def test_part_mask_of_another_size_names_the_file(write_manual, prepare):
    wrong = np.zeros((5, 8), np.uint8)
    annotations = dict(ANNOTATIONS, **{"2008_000004": objects(("person", [("torso", wrong)]))})
    with pytest.raises(ValueError, match=r"2008_000004\.mat: part 'torso' mask has shape \(5, 8\) but image"):
        prepare("pascal_person_part", write_manual(annotations))
