# Two commands: `make repro` runs the default pipeline, `make test` runs the test suite.
# Both create .venv and install the project into it first when needed.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install repro test bench bench-epsilon clean-outputs

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-compile --no-deps 'torchattacks>=3.5,<4'
	# Bytecode once, on every core: where PYTHONDONTWRITEBYTECODE is set, imports never cache it, and
	# each stage process would recompile torch's modules (seconds per process). One torch test file
	# is Python 3.12-only syntax.
	$(VENV)/bin/python -m compileall -q -j 0 -x 'py312_intrinsics' $(VENV)/lib/python*/site-packages
	touch $(STAMP)

repro: $(STAMP)
	dvc repro

# Two workers: most of the suite's time is stage processes importing torch (one core each).
# Tests that share a built project carry an xdist_group mark, so each group stays on one worker.
test: $(STAMP)
	python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	python -m benchmarks

# `dvc exp run -S epsilon=...` as a share of a full `dvc repro` (a fresh clone; a few minutes).
bench-epsilon: $(STAMP)
	python -m benchmarks.epsilon_rerun

# Remove the pipeline's outputs from the workspace (DVC's cache keeps them: `dvc checkout` restores).
clean-outputs:
	rm -rf data/prepared models/original models/hardened results plots metrics dvclive
