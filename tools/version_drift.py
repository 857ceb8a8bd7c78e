"""Compare a venv's installed packages with constraints.txt (what the suite is tested with), or rewrite the file.

    python tools/version_drift.py constraints.txt .venv-latest/bin/python          # print what drifted
    python tools/version_drift.py --write constraints.txt .venv/bin/python         # pin what .venv has

Used by `make test-latest` (before and after the suite, so a failure can be read against the versions that moved)
and `make constraints`."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

# The project itself and its example plugin come from the checkout, the installers from the venv: never pinned.
OWN = {"trl-ext", "trl-ext-example-plugin", "pip", "setuptools", "wheel"}
# Packages the suite's behaviour depends on: a drift here is the first suspect when `make test-latest` fails.
WATCHED = ("trl", "transformers", "accelerate", "peft", "datasets", "torch", "deepspeed", "bitsandbytes")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(python: str) -> dict[str, str]:
    """{package: version} of the venv behind `python`, without its local version label (2.13.0+cpu -> 2.13.0)."""
    code = "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    found = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)
    return {canonical(k): v.split("+")[0] for k, v in found.items() if canonical(k) not in OWN}


def pinned(path: Path) -> tuple[list[str], dict[str, str]]:
    header, pins = [], {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            header.append(line)
        else:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return header, pins


def drift(pins: dict[str, str], have: dict[str, str]) -> list[tuple[str, str, str]]:
    """(package, pinned, installed) for every package whose version differs, watched packages first."""
    names = sorted(set(pins) | set(have), key=lambda n: (n not in WATCHED, n))
    return [(n, pins.get(n, "-"), have.get(n, "-")) for n in names if pins.get(n) != have.get(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("constraints", type=Path)
    parser.add_argument("python", help="The venv's python executable.")
    parser.add_argument("--write", action="store_true", help="Pin the venv's versions into the constraints file.")
    args = parser.parse_args()
    header, pins = pinned(args.constraints)
    have = installed(args.python)
    if args.write:
        lines = [f"{name}=={version}" for name, version in sorted(have.items())]
        args.constraints.write_text("\n".join(header + lines) + "\n")
        print(f"Wrote {len(lines)} pins to {args.constraints}")
        return 0
    changed = drift(pins, have)
    if not changed:
        print(f"No drift: the venv has exactly the versions of {args.constraints}.")
        return 0
    width = max(len(n) for n, _, _ in changed)
    print(f"Drift from {args.constraints} ({len(changed)} packages; * = the suite depends on it directly):")
    for name, was, now in changed:
        print(f"  {'*' if name in WATCHED else ' '} {name.ljust(width)}  {was:>12} -> {now}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
