#!/usr/bin/env bash
# Install keras_interp with its test and beam extras into .venv and run the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
source "$(dirname "$0")/_venv.sh"
install_project "test,beam"
"$VENV/bin/python" -m pytest "$@"
