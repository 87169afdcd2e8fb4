#!/usr/bin/env bash
# Creates/uses .venv, installs deeplab-tf with its dev extras, runs the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/layers -k rate`.
# The tests run in one pytest-xdist worker per CPU (TEST_WORKERS overrides the count; 0 runs them
# in this process), handed out as workers free up (--dist worksteal: a few tests take a minute).
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
python -m pip install --quiet -e ".[dev]"
python -m pytest -q -n "${TEST_WORKERS:-auto}" --dist worksteal "$@"
