import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def no_model_load(monkeypatch):
    """Loading the model fails the test: for input that must be refused before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trl_ext.models.load_model_and_tokenizer", refuse)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Llama + tokenizer saved to disk, loadable with --model_name_or_path."""
    from trl_ext.testing import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture
def sft_rows():
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + {i + 2}?"}],
            "completion": [
                {"role": "assistant", "content": f"{i} + {i + 2} = {2 * i + 2}. The answer is {2 * i + 2}."}
            ],
        }
        for i in range(8)
    ]
