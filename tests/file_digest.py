"""Fingerprints of folders, to check that a command left every file as it was."""

import hashlib
import pathlib


def tree_digest(folder) -> dict[str, str]:
    """Returns {path relative to `folder`: sha256 of its bytes} of every file under `folder`."""
    folder = pathlib.Path(folder)
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}
