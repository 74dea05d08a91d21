"""Every ```bash block of README.md and docs/*.md runs, as written, in a fresh folder.

`.venv/bin/` is this environment's bin folder. A line that starts `aimod serve` (or `.venv/bin/aimod serve`)
is started in the background, checked on /healthz (at its `--port`, default 8000) and with a request without
and one with the key the block wrote to `acme.key`, then stopped; each block that serves uses its own port, so
the blocks can run in parallel. The quick start's
`make demo` and `make test` are the only lines not run here: `make test` is this test run, and `make demo` is
`aimod demo`, run by tests/demo.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server._serve import wait_healthy

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
SERVE = re.compile(r"^(?:\.venv/bin/)?aimod serve\b.*$", re.MULTILINE)
QUICK_START = {"make demo", "make test"}


def _blocks() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, match in enumerate(BLOCK.finditer(path.read_text())):
            found.append((f"{path.relative_to(ROOT)}#{i + 1}", match.group(1)))
    return found


BLOCKS = _blocks()


def _without_quick_start(script: str) -> str:
    kept = []
    for line in script.splitlines():
        command = line.split("#")[0].strip()
        if command.startswith("make "):
            assert command in QUICK_START, f"a documented make target not covered by the tests: {line!r}"
            continue
        kept.append(line)
    return "\n".join(kept)


def _env() -> dict[str, str]:
    env = dict(os.environ)  # PATH as it is: a documented command must name .venv/bin/ to find aimod's tools
    if env.pop("PYTEST_XDIST_WORKER", None):  # as in conftest.py: workers share the cores, one thread each
        env["OMP_NUM_THREADS"] = "1"
    return env


def _run(script: str, cwd: Path) -> None:
    script = script.replace(".venv/bin/", f"{BIN}/")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600
    )
    output = f"--- script\n{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, f"exit {done.returncode}\n{output}"


def _serve(before: str, line: str, cwd: Path) -> None:
    """Runs ``before`` then ``line`` (exports carried over), waits for /healthz, makes one call, stops it."""
    import httpx

    port = re.search(r"--port (\d+)", line)
    base = f"http://127.0.0.1:{port.group(1) if port else 8000}"
    script = f"{before}\nexec {line}".replace(".venv/bin/", f"{BIN}/")
    server = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_healthy(base, server, 180)
        models = httpx.get(f"{base}/v1/models", timeout=10)
        assert models.status_code == 401  # no key: refused, and the server keeps serving
        key_file = cwd / "acme.key"
        if key_file.is_file():
            key = key_file.read_text().split()[-1]
            answer = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize(("where", "script"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_documented_commands_run(where: str, script: str, tmp_path: Path) -> None:
    script = _without_quick_start(script)
    serve = SERVE.search(script)
    if serve is None:
        _run(script, tmp_path)
        return
    assert script[serve.end() :].strip() == "", f"{where}: `aimod serve` must be the block's last command"
    _serve(script[: serve.start()], serve.group(0), tmp_path)


def test_the_blocks_are_found() -> None:
    where = {w.split("#")[0] for w, _ in BLOCKS}
    assert {"README.md", "docs/cli.md", "docs/evaluation.md", "docs/server.md"} <= where
