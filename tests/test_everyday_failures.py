"""Everyday failures a TRL user meets get one line naming the problem and the fix, no traceback, before the model
loads: a Hub model or dataset while offline, a reporting integration that is not installed, --push_to_hub offline,
a conversation column stored as JSON text in a CSV. A bare saved Dataset is read as the train split."""

from __future__ import annotations

import json

import pytest

from trl_ext.cli import main

FLAGS = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none", "--save_strategy", "no"]


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)


def run(capsys, tiny_model_dir, tmp_path, *flags: str) -> str:
    argv = ["train", "sft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(tmp_path / "out"), *FLAGS]
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("trl-ext: error:"), err
    return err


def test_a_hub_model_while_offline(offline, no_model_load, capsys, tiny_model_dir, tmp_path):
    err = run(capsys, tiny_model_dir, tmp_path, "--model_name_or_path", "some-org/not-cached-model")
    assert "'some-org/not-cached-model'" in err and "HF_HUB_OFFLINE" in err and "hf download" in err


def test_a_hub_dataset_while_offline(offline, no_model_load, capsys, tiny_model_dir, tmp_path):
    err = run(capsys, tiny_model_dir, tmp_path, "--dataset_name", "some-org/not-cached-data")
    assert "'some-org/not-cached-data'" in err and "could not be reached" in err and "local path" in err


def test_a_reporting_integration_not_installed(monkeypatch, no_model_load, capsys, tiny_model_dir, tmp_path):
    monkeypatch.setattr("transformers.integrations.get_available_reporting_integrations", lambda: [])
    err = run(capsys, tiny_model_dir, tmp_path, "--report_to", "tensorboard")
    assert "--report_to tensorboard" in err and "pip install tensorboard" in err and "--report_to none" in err


def test_push_to_hub_while_offline(offline, no_model_load, capsys, tiny_model_dir, tmp_path):
    err = run(capsys, tiny_model_dir, tmp_path, "--push_to_hub", "--hub_model_id", "me/model")
    assert "--push_to_hub" in err and "HF_HUB_OFFLINE" in err


def test_messages_stored_as_json_text_in_a_csv(no_model_load, capsys, tiny_model_dir, tmp_path):
    chat = json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    path = tmp_path / "chats.csv"
    path.write_text('messages\n"' + chat.replace('"', '""') + '"\n')
    err = run(capsys, tiny_model_dir, tmp_path, "--dataset_name", str(path))
    assert "'messages'" in err and "JSON text" in err and "JSON Lines" in err


def test_the_debug_flag_keeps_the_traceback(offline, no_model_load, monkeypatch, tiny_model_dir, tmp_path):
    from trl_ext.models import ModelLoadError

    monkeypatch.setenv("TRL_EXT_DEBUG", "1")
    argv = ["train", "sft", "--model_name_or_path", "some-org/not-cached-model", "--output_dir", str(tmp_path)]
    with pytest.raises(ModelLoadError):
        main([*argv, *FLAGS])


def test_a_bare_saved_dataset_is_the_train_split(tmp_path):
    from datasets import Dataset

    from trl_ext.data import load_dataset

    Dataset.from_dict({"text": ["a", "b", "c"]}).save_to_disk(str(tmp_path / "bare"))
    loaded = load_dataset(str(tmp_path / "bare"))
    assert list(loaded) == ["train"] and list(loaded["train"]["text"]) == ["a", "b", "c"]
