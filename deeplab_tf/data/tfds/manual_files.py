"""The upstream files a builder reads from its TFDS `manual_dir`, and how to find them there.

A `ManualFile` is one upstream download: an archive (`.tar`, `.tgz`, `.zip`) or the folder it
extracts to. `locate` prefers an extracted folder in `manual_dir`, else extracts the archive with
the TFDS download manager (once, cached under the TFDS download dir); nothing is ever downloaded.
When files are missing, the error lists each one with where it comes from and where to put it; an
archive that cannot be extracted (damaged, truncated, another format) is named, and what was
extracted of it is deleted.
"""

import dataclasses
import os

from etils import epath
from tensorflow_datasets.core.download.extractor import ExtractError  # not exported by tfds.download


@dataclasses.dataclass(frozen=True)
class ManualFile:
    """One upstream input of a builder.

    Args:
        description: str. What the file holds, for messages.
        archives: tuple of str. Accepted archive names in `manual_dir`, preferred first.
        folders: tuple of str. Folder (relative to `manual_dir` or to the archive's root) that
            holds the data, first found wins, e.g. ("VOCdevkit/VOC2012",).
        url: str. Where the user gets it.
    """

    description: str
    archives: tuple
    folders: tuple
    url: str

    def instruction(self) -> str:
        """Returns one line: file name(s), what it is, where it comes from, what may replace it."""
        extracted = f" (or the folder {self.folders[0]}/ it extracts to)" if self.folders else ""
        return f"  - {' or '.join(self.archives)}{extracted}: {self.description}. From {self.url}."


VOC2010_TRAINVAL = ManualFile(
    description="PASCAL VOC 2010 trainval (JPEGImages, ImageSets/Main/train.txt and val.txt)",
    archives=("VOCtrainval_03-May-2010.tar",),
    folders=("VOCdevkit/VOC2010", "VOC2010"),
    url="http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
)


def instructions(files) -> str:
    """Returns MANUAL_DOWNLOAD_INSTRUCTIONS text for `files` (ManualFile values)."""
    lines = "\n".join(f.instruction() for f in files)
    return (
        "Download these files yourself (they are never downloaded for you) and put them in the "
        "manual dir: `data.data_dir` in a deeplab-tf experiment, or `--manual_dir` of "
        "`python -m deeplab_tf.cli.prepare_data`, or "
        "`tfds.download.DownloadConfig(manual_dir=...)`:\n" + lines
    )


def manual_dir(dl_manager, dataset: str, text: str) -> epath.Path:
    """Returns `dl_manager.manual_dir`; FileNotFoundError with `text` if it is missing or empty."""
    try:
        return dl_manager.manual_dir
    except AssertionError as error:
        reason = str(error).split(". Create it")[0]
        raise FileNotFoundError(f"{dataset}: {reason}.\n{text}") from None


def locate(dl_manager, files: dict, dataset: str) -> dict:
    """Returns {key: epath.Path of the data folder} for every ManualFile in `files`.

    Raises FileNotFoundError listing every missing file (name, origin, manual dir) at once, and
    ValueError naming an archive that cannot be extracted (`extract`) or does not contain the
    expected folder.
    """
    text = instructions(files.values())
    root = manual_dir(dl_manager, dataset, text)
    found, missing = {}, []
    for key, item in files.items():
        folder = _first_folder(root, item.folders)
        if folder is None:
            archive = next((root / a for a in item.archives if (root / a).is_file()), None)
            if archive is None:
                missing.append(item)
                continue
            extracted = extract(dl_manager, archive, item, dataset)
            folder = _first_folder(extracted, item.folders)
            if folder is None:
                raise ValueError(
                    f"{dataset}: archive {archive} has no folder {' or '.join(item.folders)}; "
                    f"is it the right file? Expected: {item.description} from {item.url}"
                )
        found[key] = folder
    if missing:
        lines = "\n".join(item.instruction() for item in missing)
        raise FileNotFoundError(
            f"{dataset}: missing in the manual dir {root}:\n{lines}\n"
            f"Put them (or their extracted folders) in {root} and run the preparation again."
        )
    return found


def extract(dl_manager, archive: epath.Path, item: ManualFile, dataset: str) -> epath.Path:
    """Returns the folder `dl_manager` extracts the archive `archive` (of `item`) to. Raises
    ValueError naming it and where to download it again when it cannot be extracted; the partial
    extraction TFDS leaves (`incomplete.*` in its extraction folder) is deleted first."""
    try:
        return epath.Path(dl_manager.extract(os.fspath(archive)))
    except ExtractError as error:
        # TFDS extracts into <download_dir>/extracted (DownloadConfig's default extract_dir) as
        # incomplete.<uuid>_<METHOD>.<archive name>, renamed only when the whole archive is read.
        partial = epath.Path(dl_manager.download_dir) / "extracted"
        for folder in partial.glob(f"incomplete.*_*.{archive.name}"):
            folder.rmtree(missing_ok=True)
        reason = str(error.__cause__ or error).strip().splitlines()[-1].lstrip("- ")  # tarfile's: one per method
        raise ValueError(f"{dataset}: archive {archive} cannot be extracted ({reason}): it is damaged, incomplete "
                         f"or not {item.description}; download it again from {item.url}") from None


def _first_folder(root: epath.Path, folders) -> epath.Path | None:
    """Returns the first of `folders` that exists under `root`, or None."""
    for folder in folders:
        if (root / folder).is_dir():
            return root / folder
    return None
