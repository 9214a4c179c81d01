# `make run` and `make test` set up .venv themselves, so both work on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes: 2 halves the suite's time on 2 cores (its slow tests wait on servers and browsers).
TEST_WORKERS ?= 2

.PHONY: run test serve bench bench-db lint setup clean

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/pip || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

# Loopback only: without sign-in the dashboard must not be reachable from other machines (docs/auth.md).
run: $(STAMP)
	$(BIN)/streamlit run dashboard.py --server.address 127.0.0.1

serve: $(STAMP)
	$(BIN)/python -m foodclf serve

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

bench-db: $(STAMP)
	$(BIN)/python bench/db_scale.py

# ruff: lint rules and formatting; lint-imports: the layers in pyproject.toml (no cycles, no upward imports).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
