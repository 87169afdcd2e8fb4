"""`manual_files.locate` on an archive that cannot be extracted: one ValueError naming it and where
to download it again, and no partial extraction left in the TFDS download dir."""

import os
import re
import tarfile

import pytest
import tensorflow_datasets as tfds

from deeplab_tf.data.tfds.manual_files import ManualFile, locate


def truncated_tar(path, source):
    """Writes a tar of 20 random 50 kB files under VOCdevkit/VOC2012, cut at 400 kB (a download
    that stopped): its first members extract, the rest is missing."""
    folder = source / "VOCdevkit" / "VOC2012"
    folder.mkdir(parents=True)
    for index in range(20):
        (folder / f"{index}.jpg").write_bytes(os.urandom(50_000))
    with tarfile.open(path, "w") as tar:
        tar.add(source / "VOCdevkit", arcname="VOCdevkit")
    os.truncate(path, 400_000)


@pytest.mark.parametrize("archive, reason", [("VOCtrainval.tar", "unexpected end of data"),
                                             ("leftImg8bit.zip", "File is not a zip file")])
def test_an_archive_that_cannot_be_extracted_is_named_and_its_partial_extraction_removed(tmp_path, archive, reason):
    manual = tmp_path / "manual"
    manual.mkdir()
    if archive.endswith(".tar"):
        truncated_tar(manual / archive, tmp_path / "source")
    else:
        (manual / archive).write_bytes(os.urandom(3000))
    before = (manual / archive).read_bytes()
    item = ManualFile("the test data", (archive,), ("VOCdevkit/VOC2012",), f"https://example.org/{archive}")
    manager = tfds.download.DownloadManager(download_dir=tmp_path / "downloads", manual_dir=manual,
                                            manual_dir_instructions="the test data")
    expected = (rf"^voc: archive {re.escape(str(manual / archive))} cannot be extracted \({reason}\): it is damaged, "
                rf"incomplete or not the test data; download it again from https://example.org/{re.escape(archive)}$")
    with pytest.raises(ValueError, match=expected):
        locate(manager, {"voc": item}, "voc")
    assert os.listdir(tmp_path / "downloads" / "extracted") == []
    assert (manual / archive).read_bytes() == before
