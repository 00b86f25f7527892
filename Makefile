# The README's two commands: `make demo` runs the main job, `make test` runs the tests.
# Both create the virtual environment on first use and reinstall when the dependencies change,
# always at the exact lock (constraints.txt). `make compat` checks the ranges of setup.cfg instead.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPAT_VENV ?= .venv-compat
COMPAT_BIN := $(COMPAT_VENV)/bin

.PHONY: demo test gpu-check bench lock compat clean-runs tables

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/suite run runs/quickstart.yaml

# The pinned runs again on ATen's portable kernels and two threads: a pin that holds on one CPU's
# kernel path only fails here, not on the next machine (tests/test_continual_pinned.py).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not cluster"
	$(BIN)/python -m pytest -q -m cluster
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q tests/test_continual_pinned.py

# On a machine with a CUDA GPU: the gpu-marked tests, then the MCLRec/SASRec epoch benchmark on cuda.
gpu-check: $(STAMP)
	@$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: torch sees no CUDA device here')"
	$(BIN)/python -m pytest -q -m gpu
	$(BIN)/python benchmarks/bench_mclrec_vs_sasrec.py --device cuda --threads 1

# The README's measured tables, regenerated from the per-seed CSVs under results/ (`suite export` writes them).
tables: $(STAMP)
	$(BIN)/suite readme-tables README.md

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lock: $(STAMP)
	@(echo "# Lock of a known-good environment (pip freeze of a fresh install on Python 3.11, x86_64)."; \
	  echo "# make installs with: pip install -c constraints.txt -e '.[test]'. Regenerate: make lock."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -E '^(cl-suite|-e )'; \
	  $(BIN)/pip freeze --all | grep '^setuptools==') > constraints.txt

# A second environment with every direct dependency at the lower bound of its range in setup.cfg,
# the fast tests on it, then a pip dry run showing that `pip install -e .` keeps a newer torch
# (2.15.0) already installed. Needs the registry and about 7 GB; not part of `make test`.
compat:
	@start=$$(date +%s); set -e; \
	test -x $(COMPAT_BIN)/python || $(PYTHON) -m venv $(COMPAT_VENV); \
	$(PYTHON) tools/compat.py lower-bounds > $(COMPAT_VENV)/lower-bounds.txt; \
	$(COMPAT_BIN)/python -m pip install --quiet --disable-pip-version-check -c $(COMPAT_VENV)/lower-bounds.txt -e '.[test]'; \
	$(COMPAT_BIN)/python -m pip check; \
	$(COMPAT_BIN)/python -m pip freeze --all --exclude-editable > $(COMPAT_VENV)/installed.txt; \
	tests=0; $(COMPAT_BIN)/python -m pytest -q -m "not slow" || tests=$$?; \
	$(PYTHON) tools/compat.py keeps-newer-torch; \
	echo "compat: $$(( $$(date +%s) - start )) s; $(COMPAT_VENV) holds $$(du -sh $(COMPAT_VENV) | cut -f1)" \
	  "(its pip freeze: $(COMPAT_VENV)/installed.txt); fast tests at the lower bounds: exit code $$tests"; \
	exit $$tests

clean-runs:
	rm -rf mlflow.db mlartifacts mlruns log log_tensorboard saved
