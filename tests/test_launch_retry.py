"""The test launcher runs a torchrun once more only when a rank aborted at interpreter exit (a rare gloo teardown
abort after a finished run); every other failure is reported on the first try."""

import sys

from trl_ext.testing import EXIT_ABORT, run_launched

SCRIPT = """
import os, sys
from pathlib import Path
marker = Path(sys.argv[1]) / f"attempts-{os.environ['RANK']}"
marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
if len(marker.read_text()) == 1 and os.environ["RANK"] == "1":
    print(sys.argv[2], file=sys.stderr, flush=True)
    sys.exit(134)
"""


def _launch(tmp_path, message: str):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    return run_launched([str(script), str(tmp_path), message], nproc=2, env=env, timeout=120)


def test_an_exit_abort_is_run_once_more(tmp_path):
    result = _launch(tmp_path, EXIT_ABORT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "attempts-1").read_text() == "xx"
    assert (tmp_path / "attempts-0").read_text() == "xx"


def test_another_failure_is_not_retried(tmp_path):
    result = _launch(tmp_path, "RuntimeError: a real failure")
    assert result.returncode != 0
    assert "a real failure" in result.stderr
    assert (tmp_path / "attempts-1").read_text() == "x"


def test_one_process_is_never_retried(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {"PATH": "/usr/bin:/bin", "RANK": "1"}
    result = run_launched([str(script), str(tmp_path), EXIT_ABORT], nproc=1, env=env, timeout=60)
    assert result.returncode == 134
    assert result.args[0] == sys.executable
    assert (tmp_path / "attempts-1").read_text() == "x"
