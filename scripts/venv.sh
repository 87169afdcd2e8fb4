# Sourced by the other scripts: creates .venv (Python 3.11) if needed and activates it.
# PYTHON picks the interpreter used to create it (default: python3.11, else python3).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
if [ ! -x .venv/bin/python ]; then
  python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
