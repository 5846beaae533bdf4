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

# Start Kiln (`kiln serve`: managed PostgreSQL, web, workers) on a data dir in .demo/, with
# Kiln's demo channel as its only channel. Build the demo environment from another terminal:
#   .venv/bin/kiln build examples/demo-environment.yaml --queue --wait --data-dir .demo/data
run: install
	$(BIN)/kiln channel demo $(DEMO)/channel
	mkdir -p $(DEMO)/data
	test -f $(DEMO)/data/kiln_config.py || printf '%s\n' \
		"# Written by 'make run': Kiln's demo channel is the only channel." \
		"c.CondaStore.conda_default_channels = ['$(DEMO)/channel']" \
		"c.CondaStore.conda_allowed_channels = ['$(DEMO)/channel']" \
		"c.CondaStoreServer.address = '127.0.0.1'" \
		> $(DEMO)/data/kiln_config.py
	$(BIN)/kiln serve --data-dir $(DEMO)/data

# Everything the suite needs, then the whole suite (unit, integration, e2e incl. the frozen binary).
# `.ci/system-deps` installs the Debian packages of the tests and of `make bench`.
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

bench: install test-deps
	$(BIN)/python bench/run.py

clean:
	rm -rf build dist $(DEMO)
