"""One run per output folder: a second `trl-ext train` into a folder another process holds is refused before the model
loads, naming the owner's pid; once the owner is killed its left-over lock file blocks nobody."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from trl_ext.cli import main
from trl_ext.run.lock import OUTPUT_LOCK, hold_output_lock, release_output_lock

HOLDER = (
    "import sys, time\n"
    "from trl_ext.run.lock import hold_output_lock\n"
    "hold_output_lock(sys.argv[1])\n"
    "print('LOCKED', flush=True)\n"
    "time.sleep(600)\n"
)
FLAGS = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]


@pytest.fixture
def no_model_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trl_ext.models.load_model_and_tokenizer", refuse)


@pytest.fixture
def holder(tmp_path):
    """A process holding the lock of tmp_path/out until the test kills it."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    assert proc.stdout.readline().strip() == "LOCKED"
    yield out, proc
    watchdog.cancel()
    proc.kill()
    proc.wait()


def test_second_run_is_refused_with_the_owner_pid_and_a_killed_owner_blocks_nobody(
    holder, tiny_model_dir, capsys, no_model_load
):
    out, proc = holder
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), *FLAGS]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"trl-ext: error: --output_dir {out} is in use by another run (pid {proc.pid} on" in err

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert f"pid {proc.pid}" in (out / OUTPUT_LOCK).read_text()  # the stale file stays; its lock died with it
    with pytest.raises(AssertionError, match="the model was loaded"):  # got past the lock
        main(argv)
    hold_output_lock(str(out))  # and released again when that run ended
    release_output_lock(str(out))


def test_other_ranks_of_a_run_do_not_take_the_lock(holder, monkeypatch):
    out, proc = holder
    monkeypatch.setenv("RANK", "1")
    hold_output_lock(str(out))  # rank 0 speaks for the run: no refusal here
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match=f"pid {proc.pid}"):
        hold_output_lock(str(out))


def test_the_lock_is_released_after_a_run(tmp_path):
    out = str(tmp_path / "out")
    hold_output_lock(out)
    release_output_lock(out)
    hold_output_lock(out)
    assert f"pid {os.getpid()}" in (tmp_path / "out" / OUTPUT_LOCK).read_text()
    release_output_lock(out)
    assert (tmp_path / "out" / OUTPUT_LOCK).read_text() == ""
