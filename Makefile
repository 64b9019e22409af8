# The two commands of the README: `make demo` and `make test`. Each sets up .venv itself.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv test lint typecheck unit demo bench clean

venv:
	@scripts/ensure-venv

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	@rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	@$(BIN)/coverage combine -q
	$(BIN)/coverage report --fail-under=90

test: lint typecheck unit

demo: venv
	$(BIN)/python -m backend_adapter.demo

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache state
