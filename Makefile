# Two commands for a fresh machine (Python >= 3.11 and a C compiler): `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= gui,dev

.PHONY: setup run test lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python compiles from source (~6 min on 2 cores); pip keeps the built wheel in its cache for next time.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	echo '$(EXTRAS)' > $@

setup: $(VENV)/.installed

# The desktop app: add folders there; a missing model is offered for download (or offline import) on first start.
# gui.syscheck names the Debian/Ubuntu packages Qt's X11 plugin needs when any are missing (see README).
run: setup
	@$(BIN)/python -m gui.syscheck
	$(BIN)/edgeret gui

# ruff and the type checker (mypy, configured in pyproject.toml)
lint: setup
	$(BIN)/ruff check edgeret gui scripts tests
	$(BIN)/python -m mypy

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV)
