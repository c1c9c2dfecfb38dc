# Two entry points: `make run` and `make test`. Everything else is a helper they call.
PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Python keeps its compiled modules (some machines ask it not to): every server process the
# end-to-end tests start would compile medicus and its libraries again, seconds each time.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test lint format install browser webdav-clients azurite migrate demo bench clean

# Serves on MEDICUS_HOST:MEDICUS_PORT, 127.0.0.1:8080 unless set. Each step prints what it did
# in a line or two; the demo's lines say how to log in and how to get a token.
run: install
	@$(BIN)/medicus migrate
	@$(BIN)/medicus demo
	@$(BIN)/medicus serve

test: install browser webdav-clients azurite
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/python scripts/check_sizes.py
	$(BIN)/python scripts/translations.py --check
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.synced

# Debian's chromium for the portal's browser tests (scripts/browser.sh says when it cannot).
browser:
	@scripts/browser.sh

# Debian's rclone, fuse3 and litmus for the WebDAV tests (scripts/webdav_clients.sh says when it cannot).
webdav-clients:
	@scripts/webdav_clients.sh

# Azurite (npm) for the Azure Blob storage tests, installed from its lock, again only when the
# lock changes; a failed install (a registry hiccup) is tried once more, then says why.
# Without npm it says so and the Azure tests fail, saying what to do.
AZURITE := tests/support/azurite
azurite: $(AZURITE)/node_modules/.installed

$(AZURITE)/node_modules/.installed: $(AZURITE)/package-lock.json
	@if command -v npm >/dev/null; then \
	  echo "installing azurite for the storage tests (first run only, about a minute)..."; \
	  cd $(AZURITE) && { npm ci --silent --no-audit --no-fund \
	    || { echo "npm ci failed; trying once more" >&2; npm ci --no-audit --no-fund; }; } \
	  && touch node_modules/.installed; \
	else \
	  echo "npm is missing: the Azure Blob storage tests will fail (they need node 20 and npm)" >&2; \
	fi

$(BIN)/uv:
	@echo "creating $(VENV) (first run only)..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Re-synced only when the declared or locked dependencies change, so the second call is quick.
$(VENV)/.synced: $(BIN)/uv pyproject.toml uv.lock
	@echo "installing dependencies..."
	@$(BIN)/uv sync --locked --quiet
	@touch $@

format: install
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

bench: install
	$(BIN)/python -m benchmarks.http_baseline

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .mypy_cache_postgresql
