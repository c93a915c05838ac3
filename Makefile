# `make test` is the one command CI runs (.ci/run): venv, install with the test extra, lint, tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Fake 8 CPU devices so sharding code is exercised without accelerators.
export XLA_FLAGS ?= --xla_force_host_platform_device_count=8
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test lint clean demo docs

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Six front-ends side by side on small_details, then the real-image part (docs/demo.md).
demo: $(BIN)/.installed
	$(BIN)/python -m resize_jax.tools.demo

# The documentation site with its API reference; warnings are errors (tests/test_docs.py builds
# it too, so `make test` checks it).
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict

test: lint
	$(BIN)/python -m pytest -n 2 -q --timeout=900

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info site
