"""The real vLLM engine, started in a subprocess by :mod:`tests.vllm.run_engine` (twice per session at most)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SECRET = "vllm-engine-test-secret-0123456789"
HERE = Path(__file__).parent


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIMOD_SECRET=SECRET,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
    )
    env.pop("AIMOD_SECRET_FILE", None)
    return env


@pytest.fixture(scope="session")
def run_engine(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], tuple[dict[str, Any], str]]:
    """Runs one engine process on a spec; returns its results and everything it printed."""

    def run(spec: dict[str, Any]) -> tuple[dict[str, Any], str]:
        folder = tmp_path_factory.mktemp("engine")
        cases, out = folder / "cases.json", folder / "out.json"
        cases.write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, str(HERE / "run_engine.py"), str(cases), str(out)],
            env=engine_env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        printed = done.stdout + done.stderr
        assert done.returncode == 0, printed[-4000:]
        return json.loads(out.read_text()), printed

    return run
