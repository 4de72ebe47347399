# Two entry points for a fresh machine: `make demo` and `make test`.
# Both build .venv from the pinned requirement files when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.requirements.sha256
# Every requirement file: test.txt includes the others (training.txt -> runtime.txt, ros-pypi.txt),
# so a change to any of them rebuilds .venv.
REQ_FILES := $(sort $(wildcard requirements/*.txt))
REQ_HASH := $(shell cat $(REQ_FILES) 2>/dev/null | sha256sum | cut -d' ' -f1)
# The package itself is installed (editable) into .venv so its tools are on PATH there.
PKG_STAMP := $(VENV)/.package.sha256
PKG_HASH := $(shell cat setup.py setup.cfg 2>/dev/null | sha256sum | cut -d' ' -f1)

.PHONY: venv test test-fast lint pytest colcon demo clean-venv

# The stamp holds the hash of the requirement files it was built from: a changed file or a
# venv whose interpreter no longer starts triggers a rebuild from scratch.
venv:
	@if [ ! -x $(VENV)/bin/python ] || ! $(VENV)/bin/python -c 'import sys' 2>/dev/null \
	    || [ "$$(cat $(STAMP) 2>/dev/null)" != "$(REQ_HASH)" ]; then \
	  echo "[venv] creating $(VENV) from $(REQ_FILES)"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) \
	  && $(VENV)/bin/pip install -q --upgrade pip \
	  && $(VENV)/bin/pip install -q -r requirements/test.txt \
	  && echo "$(REQ_HASH)" > $(STAMP) \
	  || { echo "[venv] install failed: run 'rm -rf $(VENV)' and retry, or check network access to PyPI"; exit 1; }; \
	else echo "[venv] $(VENV) is up to date"; fi
	@if [ "$$(cat $(PKG_STAMP) 2>/dev/null)" != "$(PKG_HASH)" ] || [ ! -x $(VENV)/bin/segment_node ]; then \
	  echo "[venv] installing bisestdc_ros into $(VENV) (segment_node, bisestdc-* on its PATH)"; \
	  $(VENV)/bin/pip install --no-deps --no-build-isolation -e . > $(VENV)/.package-install.log 2>&1 \
	  && test -x $(VENV)/bin/segment_node && echo "$(PKG_HASH)" > $(PKG_STAMP) \
	  || { cat $(VENV)/.package-install.log; echo "[venv] installing the package failed"; exit 1; }; \
	fi

# vermin: the code must run on Python 3.10 (JetPack 6, Humble) as well as 3.11/3.12.
PY_DIRS := bisestdc_core bisestdc_ros training benchmarks launch test
# lint-imports: the layering contracts of .importlinter (core without ROS, no cycles, ...).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vermin -q -t=3.10- --no-tips --violations --eval-annotations $(PY_DIRS)
	$(VENV)/bin/lint-imports --no-cache

# The pytest suite, run through colcon so that the installed package is what gets tested.
# Three pytest-xdist workers, one test file each at a time (module fixtures built once per file;
# each worker gets its own ROS domain ids, test/conftest.py): most end-to-end tests wait on
# subprocesses and DDS, so three workers keep two cores busy (measured on the suite of
# 2026-12-01: 286 s against 408 s with one). TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 3
colcon: venv
	source $(VENV)/bin/activate && rm -rf build install log/latest_test \
	  && colcon build --packages-select bisestdc_ros --event-handlers console_direct- \
	  && colcon test --packages-select bisestdc_ros --event-handlers console_cohesion+ \
	       --pytest-args -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile \
	  && colcon test-result --verbose --all

test: venv lint colcon

# The inner loop, under 2 minutes: pytest straight from the source tree without the `slow`
# (subprocess-heavy end-to-end) and `ros` (real Fast DDS participants) tests, no lint, no colcon
# build. `make test` stays the gate; PYTEST_ARGS adds options (a file, -k, -x).
test-fast: venv
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not slow and not ros" $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/python -m bisestdc_ros.demo

clean-venv:
	rm -rf $(VENV)
