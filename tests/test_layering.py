"""The package's layering, as WORKSPACE.md states it: each part of `deeplab_tf` imports only the
parts in rows before its own, and only `cli` imports the `experiments` package. Read from the
source with `ast`, so an import inside a function counts too."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "deeplab_tf"

ROWS = (
    ("config", "cpu", "onednn_weight_cache"),
    ("onednn_ops",),
    ("layers",),
    ("backbones",),
    ("models",),
    ("pretrained",),
    ("data",),
    ("crf",),
    ("validation",),
    ("assembly",),
    ("training",),
    ("evaluation",),
    ("cli",),
)
ROW_OF = {part: row for row, parts in enumerate(ROWS) for part in parts}


def _part(path: pathlib.Path) -> str:
    """The part of `deeplab_tf` that file `path` belongs to: its subpackage or top-level module."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imported_modules(path: pathlib.Path):
    """Yields every absolute module name file `path` imports (`from a import b` gives `a` and `a.b`)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_part_of_the_package_has_a_row():
    assert {_part(p) for p in SOURCES} == set(ROW_OF)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_rows_before_its_own(path):
    part = _part(path)
    wrong = set()
    for module in _imported_modules(path):
        names = module.split(".")
        if names[0] == "experiments" and part != "cli":
            wrong.add(module)
        if names[0] == "deeplab_tf" and len(names) > 1 and names[1] != part:
            if ROW_OF[names[1]] >= ROW_OF[part]:
                wrong.add(module)
    assert not wrong, f"{path.relative_to(PACKAGE)} ({part}) imports {sorted(wrong)}, not in a row before its own"
