# Two commands for a fresh machine (Python 3.11 or 3.12 + a C compiler):
#   make demo   -> sets up .venv, runs the demo study end to end into demo_output/
#   make test   -> sets up .venv, runs the whole test suite
# Python 3.12 (no CPU torch wheel here: the deep extra is left out and torch tests skip):
#   make test PYTHON=python3.12 VENV=.venv312 TORCH=
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_output
# Installed first so the deep extra's torch range is already satisfied (the local CPU wheel):
# pip must never resolve torch by itself (it would download a CUDA build).  Empty: no torch.
TORCH ?= torch==2.13.0
comma := ,
EXTRAS ?= radiomics$(comma)stats$(comma)cluster$(comma)xlsx$(comma)dicom-seg$(comma)test$(if $(TORCH),$(comma)deep)
PYTEST_ARGS ?=

.PHONY: demo test setup clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(if $(TORCH),$(BIN)/python -m pip install --log $(VENV)/pip.log "$(TORCH)")
	$(BIN)/python -m pip install --log $(VENV)/pip.log -e ".[$(EXTRAS)]"
	@! grep -E "Downloading .*/(torch|nvidia_[a-z_]+)-[0-9]" $(VENV)/pip.log || \
	  { echo "pip downloaded torch or CUDA libraries (see $(VENV)/pip.log)"; exit 1; }
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/nacresponse demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest Testing $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT)
