"""Collection rules for the whole repository.

The vLLM code and tests need vLLM, which lives in its own environment (.venv-vllm, see docs/vllm.md): the main
environment does not collect them, and ``make test`` runs them there (``make test-vllm``).
"""

from __future__ import annotations

import importlib.util

collect_ignore = (
    []
    if importlib.util.find_spec("vllm")
    else [
        "src/aimod/vllm/processor.py",
        "src/aimod/server/engines/vllm.py",
        "tests/vllm",
    ]
)
