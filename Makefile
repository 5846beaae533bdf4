# Kiln's developer entry points (DESIGN.md). The README's two set-up commands are `make run`
# and `make test`; CI runs `.ci/run`, which runs `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   ?= $(CURDIR)/.demo

.PHONY: install run test test-deps lint binary bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,binary]'
	touch $@

# Build a demo environment from the demo channel and print where it and its artifacts are.
run: install
	$(BIN)/kiln channel demo $(DEMO)/channel
	$(BIN)/kiln build examples/demo-environment.yaml \
		--data-dir $(DEMO)/data --channel $(DEMO)/channel

# Everything the suite needs, then the whole suite (unit, integration, e2e incl. the frozen binary).
test: install test-deps
	$(BIN)/pytest -p no:cacheprovider tests

test-deps:
	@./.ci/system-deps

lint: install
	$(BIN)/ruff check appliance tui tests bench
	$(BIN)/mypy

binary: install
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN \
		--distpath dist --workpath build/pyinstaller packaging/kiln.spec

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf build dist $(DEMO)
