# Two commands: `make repro` runs the default pipeline, `make test` runs the test suite.
# Both create .venv and install the project into it first when needed.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp
# Where PYTHONDONTWRITEBYTECODE is set, imports never cache their bytecode and every stage
# process would compile torch's modules again (seconds each): make's commands write it.
unexport PYTHONDONTWRITEBYTECODE
# What the stages, DVC and the tests import.
WARM_IMPORTS := torch torchvision dvclive dvc.cli dvc.repo.reproduce typer rich.progress pandas matplotlib.pyplot \
	mlxtend.data yaml fragile.cli $(patsubst stages/%.py,stages.%,$(filter-out stages/__init__.py,$(wildcard stages/*.py))) \
	pytest xdist torchattacks
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install repro test bench bench-epsilon gpu-check clean-outputs

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-compile --no-deps 'torchattacks>=3.5,<4'
	# Bytecode of what runs, written once by importing it (half the time of compiling all of
	# site-packages, CUDA-build torch included).
	$(VENV)/bin/python -c 'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]' $(WARM_IMPORTS)
	touch $(STAMP)

repro: $(STAMP)
	dvc repro

# Lint first ([tool.ruff] in pyproject.toml), then the tests on two workers: most of the suite's
# time is stage processes importing torch (one core each). Tests that share a built project carry
# an xdist_group mark, so each group stays on one worker.
test: $(STAMP)
	ruff check .
	python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	python -m benchmarks

# `dvc exp run -S epsilon=...` as a share of a full `dvc repro` (a fresh clone; a few minutes).
bench-epsilon: $(STAMP)
	python -m benchmarks.epsilon_rerun

# Before queueing the paper's grid on a GPU machine: a short paper-cifar10-resnet50-shaped run on
# synthetic images, every stage on CUDA, and train / FGSM images/s. Exits 1 where there is no CUDA.
gpu-check: $(STAMP)
	python -m benchmarks.gpu_check

# Remove the pipeline's outputs from the workspace (DVC's cache keeps them: `dvc checkout` restores).
clean-outputs:
	rm -rf data/prepared models/original models/hardened results plots metrics dvclive
