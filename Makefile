# OCA stack — the two commands are `make run` and `make test`; see README.md.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
ARGS  ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast lint bench bench-edge bench-control bench-steering bench-fill bench-manifest clean clean-run bootstrap

bootstrap:
	@scripts/bootstrap.sh test

# The main job: see README.md ("make run").
run:
	@scripts/bootstrap.sh run
	$(PY) -m demo $(ARGS)

# The whole suite, warnings as errors (pytest.ini options in pyproject.toml), then lint.
test:
	@scripts/bootstrap.sh test
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory lint

# Unit tests only: the quick loop while coding.
test-fast:
	@scripts/bootstrap.sh test
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint:
	@scripts/bootstrap.sh test
	$(VENV)/bin/ruff check oca fill steering control_plane demo tests bench

bench: bench-edge bench-control bench-steering bench-fill bench-manifest

bench-edge bench-control bench-steering bench-fill bench-manifest:
	@scripts/bootstrap.sh bench
	$(PY) -m bench.$(subst bench-,,$@) $(ARGS)

clean-run:
	rm -rf run

clean: clean-run
	rm -rf $(VENV) build *.egg-info tests/e2e/node_modules steering/_*.so oca/http/_*.so
