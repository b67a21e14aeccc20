# Two commands for a fresh machine (Python 3.11 + a C compiler):
#   make demo   -> sets up .venv, runs the demo study end to end into demo_output/
#   make test   -> sets up .venv, runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_output

.PHONY: demo test setup clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install "numpy>=1.26"
	# pyradiomics 3.0.1 has no wheel for Python >= 3.10: build it against the installed numpy.
	$(BIN)/python -m pip install --no-build-isolation pyradiomics==3.0.1
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/nacresponse demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest Testing

clean:
	rm -rf $(VENV) $(DEMO_OUT)
