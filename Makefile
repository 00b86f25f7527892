# The README's two commands: `make demo` runs the main job, `make test` runs the tests.
# Both create the virtual environment on first use and reinstall when the dependencies change.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lock clean-runs

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/suite run runs/quickstart.yaml

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lock: $(STAMP)
	@(echo "# Lock of a known-good environment (pip freeze of a fresh install on Python 3.11, x86_64)."; \
	  echo "# make installs with: pip install -c constraints.txt -e '.[test]'. Regenerate: make lock."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -E '^(cl-suite|-e )'; \
	  $(BIN)/pip freeze --all | grep '^setuptools==') > constraints.txt

clean-runs:
	rm -rf mlflow.db mlartifacts mlruns log log_tensorboard saved
