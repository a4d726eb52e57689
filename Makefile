# The two commands a newcomer needs are `make book` and `make test`; every target
# creates .venv and installs the package into it first, so nothing is set up by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Workers for the test run; CI machines have 2 cores.
WORKERS ?= 2

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install book test test-fast lab release clean help

help:
	@echo "make book     build and execute the whole book (HTML in book/_build/html)"
	@echo "make test     run the whole test suite"
	@echo "make lab      open JupyterLab on exercises/"
	@echo "make release  regenerate exercises/ from solutions/ with nbgrader"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build book --keep-going -W
	@echo "The book is at file://$(CURDIR)/book/_build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup -m "not slow"

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=exercises $(if $(filter 0,$(shell id -u)),--allow-root)

release: $(STAMP)
	$(BIN)/python -m course_lib.release

clean:
	rm -rf book/_build .pytest_cache
