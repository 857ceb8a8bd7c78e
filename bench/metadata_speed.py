"""Wall and CPU seconds of trl-ext's metadata commands, each the best of N runs in a fresh process.

A measurement, not a test: other jobs on the machine slow a run down, so take the best of several and compare with
`trl --help` of the same venv. Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python bench/metadata_speed.py            # 3 runs each
    OMP_NUM_THREADS=1 .venv/bin/python bench/metadata_speed.py --repeat 5 list "info asft"
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "list": ["trl-ext", "list"],
    "plugins": ["trl-ext", "plugins"],
    "help": ["trl-ext", "--help"],
    "info json_validity": ["trl-ext", "info", "json_validity"],
    "info asft": ["trl-ext", "info", "asft"],  # imports the config (it lists its fields), so TRL and torch
    "train asft help": ["trl-ext", "train", "asft", "--help"],  # the config's flags: TRL's parser
    "bench help": ["trl-ext", "bench", "--help"],
    "trl help": ["trl", "--help"],  # the reference a TRL user knows
}


def executable(name: str) -> str:
    """The console script of this interpreter's environment (the venv's trl-ext, not another one on PATH)."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def measure(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds user+system, exit code) of one run in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([executable(argv[0]), *argv[1:]], capture_output=True, env={**os.environ})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commands", nargs="*", help=f"default: all of {', '.join(map(repr, COMMANDS))}")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the best is reported")
    args = parser.parse_args()
    unknown = [c for c in args.commands if c not in COMMANDS]
    if unknown:
        parser.error(f"unknown command(s) {unknown}; choose from {list(COMMANDS)}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(
        f"{'command':<22} {'wall s':>7} {'CPU s':>7}   (best of {args.repeat}; load average {os.getloadavg()[0]:.1f})"
    )
    for name in args.commands or COMMANDS:
        runs = [measure(COMMANDS[name]) for _ in range(args.repeat)]
        failed = [code for _, _, code in runs if code != 0]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        note = f"   exit code {failed[0]}" if failed else ""
        print(f"{name:<22} {wall:>7.2f} {cpu:>7.2f}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
