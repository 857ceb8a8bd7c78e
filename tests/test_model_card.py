"""The model card: what a run pushes to the Hub (a local fake Hub endpoint records the upload) and what it leaves on
disk is TRL's card, peft's metadata and the trl-ext section, written together at every save and push. Expected keys,
tags and ids are written out by hand from the papers' BibTeX and TRL's/peft's documented metadata."""

import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from trl_ext.cli import main
from trl_ext.compat.model_card import bibtex_keys
from trl_ext.run.cards import MARKER, base_model_id

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
REPO = "user/card-test"
RUN_FLAGS = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none"]


class FakeHub:
    """The Hub endpoints `Trainer.push_to_hub` / `HfApi.upload_folder` call: repo creation, YAML validation,
    preupload (every file "regular", so its bytes come inline in the commit) and commit. `commits` records each
    commit's files; everything else answers 404."""

    def __init__(self):
        self.commits: list[dict[str, bytes]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, code, payload):
                raw = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self.answer(404, {"error": "not found"})

            do_HEAD = do_GET

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                parts = self.path.split("?")[0].strip("/").split("/")  # api/models/ORG/NAME/ACTION/REVISION
                host = f"http://{self.headers['Host']}"
                if self.path.startswith("/api/validate-yaml"):
                    yaml.safe_load(json.loads(body)["content"].split("---")[1])  # front matter that parses
                    return self.answer(200, {"errors": [], "warnings": []})
                if self.path.startswith("/api/repos/create"):
                    return self.answer(200, {"url": f"{host}/{REPO}", "name": REPO})
                action = parts[4] if len(parts) > 4 and parts[:2] == ["api", "models"] else None
                if action == "preupload":
                    files = json.loads(body)["files"]
                    modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                    return self.answer(200, {"files": modes})
                if action == "commit":
                    lines = [json.loads(line) for line in body.decode().splitlines()]
                    files = {
                        x["value"]["path"]: base64.b64decode(x["value"]["content"])
                        for x in lines
                        if x["key"] == "file"
                    }
                    hub.commits.append(files)
                    return self.answer(200, {"commitUrl": f"{host}/{REPO}/commit/{'0' * 40}", "commitOid": "0" * 40})
                self.answer(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def cards(self) -> list[str]:
        return [files["README.md"].decode() for files in self.commits if "README.md" in files]


@pytest.fixture(scope="module")
def builtin_cache(tiny_model_dir, tmp_path_factory):
    """A trl-ext cache in which the built-in `smollm2-135m` is already converted: the tiny model stands in for it."""
    cache = tmp_path_factory.mktemp("cache")
    shutil.copytree(tiny_model_dir, cache / "models" / "smollm2-135m")
    return cache


def push_run(builtin_cache, tmp_path, *args) -> tuple[FakeHub, Path]:
    """`trl-ext train ... --push_to_hub` in a subprocess whose HF_ENDPOINT is the fake Hub (read at import)."""
    hub = FakeHub()
    out = tmp_path / "out"
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "hf_not_a_real_token",
        "TRL_EXT_CACHE": str(builtin_cache),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "trl_ext", "train", *args, "--model_name_or_path", "smollm2-135m"]
    command += ["--output_dir", str(out), "--push_to_hub", "--hub_model_id", REPO, *RUN_FLAGS]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert hub.cards(), "no README.md was pushed"
    return hub, out


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_pushed_card_of_a_lora_sft_run_after_grape(builtin_cache, tmp_path):
    hub, out = push_run(
        builtin_cache,
        tmp_path,
        *("sft", "--transforms", "grape", "--dataset_name", "builtin:arith_candidates", "--use_peft"),
        *("--hub_token", "hf_secret_in_a_flag"),
    )
    for card in hub.cards():  # every push (at save and at the end of training) carries the complete card
        assert MARKER in card and "zhang2025grape" in card
    card = hub.cards()[-1]
    assert card == (out / "README.md").read_text()  # the card on the Hub is the card on disk
    meta = front_matter(card)
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert meta["base_model"] == SMOLLM2
    assert {"generated_from_trainer", "trl", "sft", "trl-ext", "lora", f"base_model:adapter:{SMOLLM2}"} <= set(
        meta["tags"]
    )
    assert "datasets" not in meta  # built-in data is not a Hub dataset
    assert Counter(bibtex_keys(card)) == {"vonwerra2020trl": 1, "zhang2025grape": 1}
    assert f"fine-tuned version of [{SMOLLM2}](https://huggingface.co/{SMOLLM2})" in card
    assert "on data generated by trl-ext (`builtin:arith_candidates`)" in card
    assert "huggingface.co/datasets/builtin" not in card and "[None]" not in card
    assert "- PEFT " in card and "hf_secret_in_a_flag" not in card


def test_pushed_card_of_a_grpo_run_with_an_rlstruct_reward(builtin_cache, tmp_path):
    hub, _ = push_run(
        builtin_cache,
        tmp_path,
        *("grpo", "--dataset_name", "builtin:json_extract", "--rewards", "json_validity,rlstruct"),
        *("--num_generations", "2", "--max_completion_length", "8"),
    )
    for card in hub.cards():
        assert MARKER in card and "hu2025rlstruct" in card
    card = hub.cards()[-1]
    meta = front_matter(card)
    assert meta["base_model"] == SMOLLM2 and meta["library_name"] == "transformers"
    assert {"generated_from_trainer", "trl", "grpo", "trl-ext"} <= set(meta["tags"])
    # GRPO's paper once (TRL prints it), RL-Struct once for its two rewards, TRL once.
    assert Counter(bibtex_keys(card)) == {"shao2024deepseekmath": 1, "hu2025rlstruct": 1, "vonwerra2020trl": 1}
    assert "`reward:json_validity`, `reward:rlstruct`" in card


def test_local_card_after_a_lora_run_keeps_trl_and_peft_metadata(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "asft", "--model_name_or_path", tiny_model_dir, "--output_dir", str(out), "--use_peft"]
    assert main([*args, *RUN_FLAGS, "--save_strategy", "no"]) == 0
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert {"generated_from_trainer", "trl", "sft", "trl-ext", "asft", "lora"} <= set(meta["tags"])
    # A local folder is no Hub id: neither `base_model` nor peft's adapter tag names it; the sentence does.
    assert "base_model" not in meta and not any(t.startswith("base_model:") for t in meta["tags"])
    assert "fine-tuned version of a local model (`model`)" in card
    # ASFT's citation is TRL's (from the trainer's `_paper`): once, and trl-ext's section points to it.
    assert Counter(bibtex_keys(card)) == {"zhu2025anchored": 1, "vonwerra2020trl": 1}
    assert card.index("Cited above.") > card.index(MARKER)


def test_base_model_id(tmp_path):
    assert base_model_id("smollm2-135m") == SMOLLM2
    assert base_model_id("org/name") == "org/name"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert base_model_id(str(plain)) is None
    stage_one = tmp_path / "stage1"
    stage_one.mkdir()
    (stage_one / "README.md").write_text(f"---\nbase_model: {SMOLLM2}\ntags:\n- trl-ext\n---\n# card\n")
    assert base_model_id(str(stage_one)) == SMOLLM2  # a recipe's later stage names the model stage 1 started from
