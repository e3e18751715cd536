# The two commands of the README. Both do all set-up first (scripts/install.sh, idempotent).
VENV ?= .venv

.PHONY: demo test test-fast install

install:
	bash scripts/install.sh

demo: install
	$(VENV)/bin/musilingo demo

# The whole suite: what CI runs.
test: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -ra tests

# The lane to run while working: every test not marked slow (whole pipelines, several
# processes, browsers), a few minutes on 2 cores.
test-fast: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -ra -m "not slow" tests
