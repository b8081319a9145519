# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: demo test bench vectors fuzz crash-campaign clean

$(VENV)/created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

$(VENV)/installed: $(VENV)/created pyproject.toml
	$(PIP) install -q -e .
	touch $@

# The suite runs the Flower adapter's tests too, so `make test` installs the flower extra.
$(VENV)/installed-dev: $(VENV)/created pyproject.toml
	$(PIP) install -q -e '.[dev,flower]'
	touch $@

demo: $(VENV)/installed
	$(VENV)/bin/fedprivacy simulate

# The linter and the type checker run over the package first; a finding fails the target.
test: $(VENV)/installed-dev
	$(PY) -m ruff check fedprivacy fedprivacy_bench
	$(PY) -m mypy fedprivacy fedprivacy_bench
	$(PY) -m pytest -q

bench: $(VENV)/installed-dev
	$(PY) -m pytest -q bench --benchmark-enable
	$(VENV)/bin/fedprivacy bench secagg --clients 100 --dim 100000 --dropout 0.1
	$(VENV)/bin/fedprivacy bench flower --clients 100 --dim 100000 --dropout 0.1
	$(VENV)/bin/fedprivacy bench ldp --union 1000000 --real 300 --cpp 2

# Every decoder and on-disk format, 1,000,000 mutated inputs each (make test runs 2,000 each).
fuzz: $(VENV)/installed-dev
	$(PY) -m fuzz.run --inputs $(or $(INPUTS),1000000)

# simulate --out killed at random points, audited and re-run after each kill (make test runs 8).
crash-campaign: $(VENV)/installed-dev
	PYTHONPATH=. $(PY) tests/crash_campaign.py --kills $(or $(KILLS),500)

vectors: $(VENV)/installed
	$(PY) protocols/secagg/generate_vectors.py
	$(PY) protocols/ldp/generate_vectors.py
	$(PY) protocols/psu/generate_vectors.py
	$(PY) protocols/ddp/generate_vectors.py

clean:
	rm -rf $(VENV) build *.egg-info
