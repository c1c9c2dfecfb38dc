# Two entry points: `make run` and `make test`. Everything else is a helper they call.
PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint format install migrate demo bench clean

run: install
	$(BIN)/medicus migrate
	$(BIN)/medicus demo
	$(BIN)/medicus serve --host 127.0.0.1 --port 8080

test: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.synced

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

# Re-synced only when the declared or locked dependencies change, so the second call is quick.
$(VENV)/.synced: $(BIN)/uv pyproject.toml uv.lock
	$(BIN)/uv sync --locked --quiet
	touch $@

format: install
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

bench: install
	$(BIN)/python -m benchmarks.http_baseline

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .mypy_cache_postgresql
