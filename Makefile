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

.PHONY: install book test test-fast lab hub release clean help

help:
	@echo "make book     build and execute the whole book (HTML in book/_build/html, 한국어판 in book/_build/html/ko)"
	@echo "make test     run the whole test suite"
	@echo "make test-fast  the tests not marked slow (a few minutes)"
	@echo "make lab      open JupyterLab on exercises/ (LANG=ko_KR.UTF-8 make lab: in Korean)"
	@echo "make hub      (as root) the course JupyterHub on 127.0.0.1, for a demo (deploy/jupyterhub/)"
	@echo "make release  regenerate exercises/ from solutions/ with nbgrader"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all]"
	# pip compiles what it installs, but course_lib is installed in place (-e): compile it too,
	# since with PYTHONDONTWRITEBYTECODE (or in a grading kernel) every process compiles it anew.
	$(BIN)/python -m compileall -q course_lib
	touch $(STAMP)

# The hub's proxy, configurable-http-proxy from npm, in a project-local prefix; without npm
# the script says so and skips it (the hub test then skips and says why).
CHP := $(VENV)/node/bin/configurable-http-proxy
$(CHP): deploy/jupyterhub/install_proxy.sh | $(STAMP)
	sh deploy/jupyterhub/install_proxy.sh $(VENV)/node

install: $(STAMP) $(CHP)

# Pages execute through jupyter-cache and re-run only when their code or course_lib changes;
# `make test` reuses the same cache (course_lib/book_build.py).
book: $(STAMP)
	$(BIN)/python -m course_lib.book_build

# The whole suite; it builds the book once (first, on one worker) and prints the 25 slowest tests.
test: $(STAMP) $(CHP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup --durations=25

# The edit-test loop: everything but the slow tests (book, grading round trips, training).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup -m "not slow" --durations=10

# In the locale's language where a JupyterLab language pack is installed: LANG=ko_KR.UTF-8 make lab.
lab: $(STAMP)
	$(BIN)/python -m course_lib.lab

# A class on one server: JupyterHub, nbgrader's exchange, learner and instructor roles.
hub: $(STAMP) $(CHP)
	sh deploy/jupyterhub/hub.sh

release: $(STAMP)
	$(BIN)/python -m course_lib.release

clean:
	rm -rf book/_build .pytest_cache
