"""File modes of what the exporters write: their temporary files and folders (`tempfile.mkstemp`,
`tempfile.mkdtemp`, private to their owner) get, before they are renamed into place, the mode the
process's umask gives a file `open()` creates or a folder `os.mkdir` makes, so that whoever may
read the user's other files (a TF Serving user, a model server) can read the export too."""

import os


def give_umask_mode(path: str) -> None:
    """Sets the mode of file or folder `path` to what the umask gives a new one: 0o666 (a file) or
    0o777 (a folder) without the umask's bits, e.g. 0o644 / 0o755 under umask 022."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)
