# Set-up lives here: `make demo` and `make test` create .venv and install
# everything when it is missing or older than pyproject.toml.
# The first interpreter that really runs (pyenv shims exist for versions that are not active).
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do $$p -c 'import sys; assert (3,11) <= sys.version_info[:2] <= (3,12)' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint lint-imports bench clean peer-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v=sys.version_info[:2]; sys.exit(0 if (3,11)<=v<=(3,12) else "fti needs Python 3.11 or 3.12 (Bytewax has no wheels for %d.%d)" % v)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fti demo --project examples/fraud

test: $(STAMP) lint lint-imports
	bash infra/install-prometheus.sh
	bash infra/install-redis.sh
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	bash infra/install-prometheus.sh
	bash infra/install-redis.sh
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

# import-linter reads packages from disk, and the editable install maps folders from outside
# fti/: check an installed copy of the tree instead (build/ is git-ignored).
lint-imports: $(STAMP)
	rm -rf build/lint-imports
	$(BIN)/python -m pip install --quiet --no-deps --target build/lint-imports .
	cd build/lint-imports && PYTHONPATH=. ../../$(BIN)/lint-imports ../../pyproject.toml

clean:
	rm -rf .fti

# `fti bench peer-quix` runs Quix Streams in a venv of its own: quixstreams 3.28 needs
# confluent-kafka < 2.13 and must not change fti's. The pins are the `peer` extra of
# pyproject.toml, installed alone (not fti); the venv ignores itself in git.
PEER_VENV := .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed

$(PEER_STAMP): pyproject.toml
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	echo '*' > $(PEER_VENV)/.gitignore
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["peer"], sep="\n")' > $(PEER_VENV)/requirements.txt
	$(PEER_VENV)/bin/python -m pip install --quiet -r $(PEER_VENV)/requirements.txt
	touch $(PEER_STAMP)

peer-venv: $(PEER_STAMP)
