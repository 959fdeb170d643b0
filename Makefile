# Two commands do everything on a machine with python3, pip and make:
#   make demo   - virtualenv, install with the server extra, run examples/quickstart.py on a local server
#   make test   - virtualenv, install everything, lint, type-check, test, build the docs
#   make dist   - build the wheel and the sdist into dist/ and check them with twine
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEV_STAMP := $(VENV)/.installed-dev
SERVER_STAMP := $(VENV)/.installed-server

.PHONY: help demo test test-postgres test-browser screenshots lint typecheck unit docs readme bench fuzz dist clean

help:
	@echo "make demo   run the quickstart against a throw-away local server"
	@echo "make test   lint, type-check, run every test, build the docs"
	@echo "make bench  run the benchmarks (see docs/performance.rst)"
	@echo "make fuzz   fuzz the server against its OpenAPI description (random seeds, long)"
	@echo "make dist   build the wheel and the sdist into dist/ (twine-checked)"
	@echo "make test-browser  only the browser tests (they drive an installed Chromium)"
	@echo "make test-postgres only the PostgreSQL + S3 half of the server and e2e test matrix"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The distribution is kloudless-compat (see README: "kloudless" on the index is the defunct 2.x SDK).
# A "kloudless" distribution left in the environment (2.x, or this project before the rename) would
# shadow this one, so it goes first.
UNINSTALL_OLD := $(BIN)/python -m pip uninstall --quiet --yes kloudless 2>/dev/null || true

$(DEV_STAMP): pyproject.toml setup.py | $(BIN)/python
	@$(UNINSTALL_OLD)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(DEV_STAMP) $(SERVER_STAMP)

$(SERVER_STAMP): pyproject.toml setup.py | $(BIN)/python
	@$(UNINSTALL_OLD)
	$(BIN)/python -m pip install --quiet -e ".[server,cli]"
	touch $(SERVER_STAMP)

demo: $(SERVER_STAMP)
	$(BIN)/python -m kloudless.server.demo examples/quickstart.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# Test files run on PYTEST_WORKERS processes (pytest-xdist), a file's tests on one worker so its
# module fixtures start once; PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 3
unit: $(DEV_STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --cov=kloudless --cov-report=term-missing

docs: $(DEV_STAMP)
	@if [ -f docs/conf.py ]; then $(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html; fi

readme: $(DEV_STAMP)
	$(BIN)/python -W ignore::UserWarning -m readme_renderer README.rst -o /dev/null

test: lint typecheck unit docs readme

# make test runs every server and e2e test on both configurations of the test matrix
# (sqlite-files and postgres-s3, see tests/server/conftest.py); this runs one of them only.
test-postgres: $(DEV_STAMP)
	KLOUDLESS_TEST_CONFIG=postgres-s3 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile \
	    tests/server tests/e2e tests/s3

# The browser tests drive an installed Chromium through Playwright (no browser download).
test-browser: $(DEV_STAMP)
	@if command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 \
	    || [ -n "$$KLOUDLESS_TEST_BROWSER" ]; then \
	    $(BIN)/pytest -ra tests/browser; \
	else \
	    echo "No Chromium found. Install one, then run make test-browser again:"; \
	    echo "  Debian/Ubuntu: sudo apt-get install chromium-headless-shell   (or chromium)"; \
	    echo "  elsewhere: set KLOUDLESS_TEST_BROWSER=/path/to/chromium"; \
	    exit 1; \
	fi

# Rewrite the docs' screenshots (docs/_static/screenshots) from the browser tests.
screenshots: $(DEV_STAMP)
	KLOUDLESS_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q tests/browser

bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks

# make test runs the same schemathesis suite with a fixed seed and a few examples per operation.
# KLOUDLESS_FUZZ_EXAMPLES=N sets the examples per operation (100 by default here).
fuzz: $(DEV_STAMP)
	KLOUDLESS_FUZZ=1 $(BIN)/pytest -q -p no:cacheprovider tests/openapi/test_schemathesis.py

dist: $(DEV_STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage docs/_build
