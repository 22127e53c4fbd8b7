# ketenbus — each target works on a fresh machine by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench fuzz soak clean tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check schemas streams connectors tests bench fuzz
	$(BIN)/ruff format --check schemas streams connectors tests bench fuzz
	$(BIN)/mypy

# promtool and prometheus (Debian's package prometheus) for the alert-rule and scrape tests;
# installed only when missing, and the service the package may start is stopped again.
tools:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus && \
	  { $$SUDO service prometheus stop >/dev/null 2>&1 || true; }; }

test: tools lint
	$(BIN)/ketenbus schemas check
	$(BIN)/ketenbus policy check
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/ketenbus demo

bench: $(STAMP)
	$(BIN)/python -m bench

# The resilience tests at soak scale: a million bad inputs, ten thousand events under SIGKILLs
# over five minutes, a fresh random seed each run (printed, so a failure can be replayed).
soak: tools $(STAMP)
	KETENBUS_SOAK_BAD=1000000 KETENBUS_SOAK_VALID=20000 KETENBUS_SOAK_EVENTS=10000 \
	KETENBUS_SOAK_HTTP=1000 KETENBUS_SOAK_LOAD_S=300 KETENBUS_SOAK_SEED=$$(date +%s) \
	$(BIN)/python -m pytest -q -s -p no:cacheprovider --timeout 14400 tests/resilience

# Coverage-guided fuzzing (atheris) of the codec and the ingress body parser, from seed corpora
# of valid inputs; FUZZ_SECONDS per target. A crash leaves its input in .fuzz/ and fails.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[fuzz]'
	rm -rf .fuzz/seeds && $(BIN)/python -m fuzz.seeds .fuzz/seeds
	mkdir -p .fuzz/codec .fuzz/ingress
	cd .fuzz && PYTHONPATH=$(CURDIR) ../$(BIN)/python -m fuzz.fuzz_codec -max_total_time=$(FUZZ_SECONDS) codec seeds/codec
	cd .fuzz && PYTHONPATH=$(CURDIR) ../$(BIN)/python -m fuzz.fuzz_ingress -max_total_time=$(FUZZ_SECONDS) ingress seeds/ingress

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .fuzz *.egg-info
