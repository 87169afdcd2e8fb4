#!/usr/bin/env bash
# Creates/uses .venv, installs deeplab-tf with its dev extras, runs the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/layers -k rate`.
# The tests run in one pytest-xdist worker per CPU (TEST_WORKERS overrides the count; 0 runs them
# in this process). --dist worksteal: a worker that runs out of tests takes some of another's
# queue, so a few minute-long tests do not leave one worker busy while the other idles.
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
python -m pip install --quiet -e ".[dev]"
python -m pytest -q -n "${TEST_WORKERS:-auto}" --dist worksteal "$@"
