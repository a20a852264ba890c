# lumbar: two commands on a fresh machine.
#   make demo   set up .venv and run the main job
#   make test   set up .venv and run every check (format, lint, types, tests)
# Set-up is a file target, so it runs once and again only when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest docs reference clean help

help:
	@echo "make demo   set up and run the demo"
	@echo "make test   set up and run format check, lint, type check and tests"
	@echo "make docs   regenerate the generated docs (CLI and instrument references)"
	@echo "make reference   re-run the R reference scripts and fail if their outputs drift"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lumbar needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lumbar demo --replace

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench conftest.py
	$(BIN)/ruff check src tests bench conftest.py

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	scripts/ensure-postgres.sh
	scripts/ensure-chromium.sh
	$(BIN)/pytest -n auto

test: lint typecheck pytest

docs: $(STAMP)
	$(BIN)/python -m lumbar._docs

# Re-run every R reference script (needs R with nlme, emmeans, mice, geepack, sandwich,
# numDeriv, metafor, jsonlite: apt-get install --no-install-recommends r-base-core r-cran-nlme
# r-cran-emmeans r-cran-mice r-cran-geepack r-cran-sandwich r-cran-numderiv r-cran-metafor
# r-cran-jsonlite)
# and fail if any output differs from the committed one.
reference: $(STAMP)
	scripts/ensure-r.sh
	for script in tests/reference/*.R; do echo "Rscript $$script"; Rscript "$$script" || exit 1; done
	git diff --exit-code -- tests/reference/

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
