# Both entry points create .venv and install the project on first use.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint format demo

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

DEMO_CKPT := tests/fixtures/official-ijepa/tiny-vit-p8-32px.pth.tar
DEMO_OUT  := out/demo

# Inspect the bundled official-format checkpoint, render a small synthetic CLEVR, and extract its
# features into a cache (run it twice: the second extraction is served from the cache).
demo: $(STAMP)
	$(VENV)/bin/ijepa-eval info --ckpt $(DEMO_CKPT)
	$(VENV)/bin/ijepa-eval data synth-clevr --out $(DEMO_OUT)/CLEVR_v1.0 --train 1000 --val 200 --size 64
	$(VENV)/bin/ijepa-eval data info clevr_count:$(DEMO_OUT)/CLEVR_v1.0
	$(VENV)/bin/ijepa-eval extract --ckpt $(DEMO_CKPT) --data clevr_count:$(DEMO_OUT)/CLEVR_v1.0 \
		--split train800 --layers all --cache-dir $(DEMO_OUT)/features
	$(VENV)/bin/ijepa-eval cache ls --cache-dir $(DEMO_OUT)/features
