# The two set-up commands of the README:
#   make demo   install if needed, then run the main job
#   make test   install if needed, then run every test
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STACK := $(VENV)/.stack-done
PLUGIN := $(VENV)/.plugin-done
SOURCES := $(shell find mla_plugin mla_bridge -name '*.py' -o -name '*.yaml') mla_bridge.pth setup.py

.PHONY: install demo test clean

install: $(PLUGIN)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch from this machine's disk; torchaudio and MMF without their (old) pins.
$(STACK): requirements.txt | $(VENV)/bin/python
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	$(PIP) install --no-deps torchaudio==2.11.0 mmf==1.0.0rc10
	$(PIP) install -r requirements.txt
	touch $@

# Re-installed (without dependencies) only when the plugin's sources change.
$(PLUGIN): $(STACK) $(SOURCES)
	$(PIP) install --no-deps --no-build-isolation .
	rm -rf build
	touch $@

demo: install
	$(PY) -m mla_plugin.leaderboard --config projects/mla/leaderboard/demo.yaml

test: install
	PYTHONPATH=$(CURDIR) $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info
