# The two set-up commands of the README:
#   make demo   install if needed, then run the main job
#   make test   install if needed, then lint and run every test
# and, for the edit loop, `make test-fast` (no subprocess, browser, distributed, slurm or slow tests).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STACK := $(VENV)/.stack-done
PLUGIN := $(VENV)/.plugin-done
SOURCES := $(shell find mla_plugin mla_bridge -name '*.py' -o -name '*.yaml' -o -name '*.j2' -o -name '*.css') \
	mla_bridge.pth mla_bridge_hook.py setup.py pyproject.toml
FAST := not slow and not subprocess and not browser and not distributed and not slurm

.PHONY: install demo test test-fast lint clean

install: $(PLUGIN)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The stack and the dependencies of pyproject.toml (torch/torchvision from its `stack`
# extra, from this machine's disk); torchaudio and MMF rc10 without their old pins.
$(STACK): pyproject.toml | $(VENV)/bin/python
	$(PIP) install --upgrade pip
	$(PIP) install --no-deps torchaudio==2.11.0 mmf==1.0.0rc10 openwakeword==0.5.1
	$(PIP) install ".[stack,test]"
	rm -rf build
	touch $@

# Re-installed (without dependencies) only when the plugin's sources change.
$(PLUGIN): $(STACK) $(SOURCES)
	$(PIP) install --no-deps --no-build-isolation .
	rm -rf build
	touch $@

demo: install
	$(PY) -m mla_plugin.data.avdigits_features --out .cache/avdigits_features
	$(PY) -m mla_plugin.leaderboard --config projects/mla/leaderboard/demo.yaml

# lint-imports: the layer contracts of pyproject.toml ([tool.importlinter]), on this tree
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# two workers (pytest-xdist), one per core of the 2-core CI machine; a file's tests stay
# on one worker, so its module fixtures are built once
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

test-fast: install
	$(PY) -m pytest -q -m "$(FAST)"

clean:
	rm -rf $(VENV) build *.egg-info
