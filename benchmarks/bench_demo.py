"""Wall time of `aimod demo --quick` and `aimod demo`, each as a fresh process, as a new user runs them.

The issue asks for at most 1 minute (--quick) and 5 minutes (full) on 2 cores. Each run is a new `aimod`
process (imports, model loading and the report included) writing to a temporary folder; the per-section
times come from the report's summary.json. With --cold, the quick run's first repeat uses an empty aimod cache
(AIMOD_CACHE), so it includes the one-time conversion of SmolLM2's GGUF file that a fresh machine pays once.

Run: python benchmarks/bench_demo.py [--quick-runs 3] [--full-runs 1] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AIMOD = Path(sys.executable).with_name("aimod")


def run(quick: bool, env: dict[str, str]) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run(
            [str(AIMOD), "demo", "--out", folder, *(["--quick"] if quick else [])],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        summary = json.loads((Path(folder) / "summary.json").read_text())
    return seconds, {s["key"]: s["seconds"] for s in summary["sections"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick-runs", type=int, default=3)
    parser.add_argument("--full-runs", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="first quick run with an empty aimod cache")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; each run is a fresh `aimod demo` process\n")
    print("| run | wall s | photos | fashion | scenes | text | attack |")
    print("|---|---|---|---|---|---|---|")
    for quick, runs in ((True, args.quick_runs), (False, args.full_runs)):
        times = []
        for i in range(runs):
            env = dict(os.environ)
            cold = quick and args.cold and i == 0
            with tempfile.TemporaryDirectory() as cache:
                if cold:
                    env["AIMOD_CACHE"] = cache
                seconds, sections = run(quick, env)
            if not cold:
                times.append(seconds)
            name = ("--quick" if quick else "full") + (" (cold cache)" if cold else "")
            cells = " | ".join(f"{sections.get(k, 0):.1f}" for k in ("photos", "fashion", "scenes", "text", "attack"))
            print(f"| {name} #{i + 1} | {seconds:.1f} | {cells} |", flush=True)
        if times:
            limit = 60 if quick else 300
            print(
                f"| {'--quick' if quick else 'full'} median of {len(times)} | {statistics.median(times):.1f} "
                f"(limit {limit}) | | | | | |"
            )


if __name__ == "__main__":
    main()
