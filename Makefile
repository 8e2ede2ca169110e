# Two commands on a fresh machine (Python 3.10+ and pip):
#   make demo   grow, evaluate and export a model on the embedded hierarchical-digits dataset
#   make test   run the whole test suite, the docstring examples (doctests) and the notebooks
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

# --doctest-modules runs every docstring example of the package (layerwise_keras/conftest.py: their shared
# objects). It would also import tests/conftest.py and notebooks/conftest.py as doctest modules, both named
# `conftest` (a clash): the two --ignore keep them out of that collection; they still load as conftests.
test: $(BIN)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -rs -p no:cacheprovider tests --doctest-modules layerwise_keras \
		--nbmake notebooks --ignore=tests/conftest.py --ignore=notebooks/conftest.py

clean-venv:
	rm -rf $(VENV)
