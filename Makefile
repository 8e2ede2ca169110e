# Two commands on a fresh machine (Python 3.10+ and pip):
#   make demo   grow, evaluate and export a model on the embedded hierarchical-digits dataset
#   make test   run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUTPUT ?= saved_models/digits
ARGS ?=

.PHONY: demo test install clean-venv

$(BIN)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/layerwise-keras train --dataset hierarchical_digits --output $(OUTPUT) $(ARGS)

test: $(BIN)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -rs -p no:cacheprovider tests --nbmake notebooks

clean-venv:
	rm -rf $(VENV)
