# The two commands of the README. Both do all set-up first (scripts/install.sh, idempotent).
VENV ?= .venv

.PHONY: demo test install

install:
	bash scripts/install.sh

demo: install
	$(VENV)/bin/musilingo demo

test: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -ra tests
