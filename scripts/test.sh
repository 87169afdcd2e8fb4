#!/usr/bin/env bash
# Creates/uses .venv, installs deeplab-tf with its dev extras, runs the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/layers -k rate`.
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
python -m pip install --quiet -e ".[dev]"
python -m pytest -q "$@"
