# Both entry points create .venv and install the project on first use.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint format demo

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# -n auto: one pytest worker per core (pytest-xdist); worksteal keeps both busy to the end
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist worksteal

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Rewrite the leaderboard's golden files (tests/fixtures/records/expected*) from the fixture
# records after an intended change to the tables; review the diff before committing it.
.PHONY: golden
golden: $(STAMP)
	REGENERATE_GOLDEN=1 $(PY) -m pytest -q tests/test_results_leaderboard.py -k test_cli_writes_the_golden_file

# Every GPU figure of the issues in one run (under 8 minutes on an H100): gpu-marked tests,
# extraction, probes, pretraining and fine-tuning throughput. Writes out/gpu-check/gpu_check.{json,md}.
# The dry run takes the same code paths with tiny shapes on the CPU (CI runs it in the tests).
.PHONY: gpu-check gpu-check-dry

gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

gpu-check-dry: $(STAMP)
	$(PY) benchmarks/gpu_check.py --dry-run

# The synthetic suite: the bundled checkpoint (ijepa_tiny_synth) on data rendered here, offline.
# `make demo` prints its leaderboard; `make regression` checks it against results/baseline/;
# `make baseline` regenerates that baseline (commit the result deliberately).
CKPT    ?= ijepa_tiny_synth
OUT     ?= out/demo
EVAL    := $(VENV)/bin/ijepa-eval
COMMON   = --ckpt $(CKPT) --results $(OUT)/results --cache-dir $(OUT)/cache
LINEAR   = -p 'lrs=[0.003,0.01,0.03,0.1]' -p 'weight_decays=[0.0]' -p min_steps=300

.PHONY: suite-data suite demo regression baseline bundled-vs-random

suite-data: $(STAMP)
	$(EVAL) data synth-classes --out $(OUT)/synth-classes --classes 10 --per-class 40 --size 64 --seed 0
	$(EVAL) data synth-clevr --out $(OUT)/CLEVR_v1.0 --train 1000 --val 300 --size 64 --seed 0

suite: suite-data
	$(EVAL) run $(COMMON) --tasks linprobe --data $(OUT)/synth-classes $(LINEAR)
	$(EVAL) lowshot $(COMMON) --shots 1,2,5 --data $(OUT)/synth-classes
	$(EVAL) run $(COMMON) --tasks clevr_count,clevr_dist --data $(OUT)/CLEVR_v1.0 $(LINEAR)
	$(EVAL) run $(COMMON) --tasks depth_synth --data $(OUT)/CLEVR_v1.0/depth -p epochs=10

demo: suite
	$(EVAL) leaderboard --results $(OUT)/results --reference results/reference

regression: OUT := out/regression
regression: suite
	$(EVAL) check --baseline results/baseline --results $(OUT)/results

baseline: OUT := out/baseline
baseline:
	rm -rf $(OUT)/results
	$(MAKE) suite OUT=$(OUT)
	rm -rf results/baseline/runs
	mkdir -p results/baseline
	cp -r $(OUT)/results/runs results/baseline/runs

# The bundled model against the same architecture with random weights, on the same suite.
bundled-vs-random: OUT := out/bundled-vs-random
bundled-vs-random: $(STAMP)
	rm -rf $(OUT)/results
	mkdir -p $(OUT)
	$(PY) results/bundled_vs_random/make_random_init.py $(OUT)/random_init.pth.tar
	$(MAKE) suite OUT=$(OUT) CKPT=ijepa_tiny_synth
	$(MAKE) suite OUT=$(OUT) CKPT=$(OUT)/random_init.pth.tar
	rm -rf results/bundled_vs_random/runs
	cp -r $(OUT)/results/runs results/bundled_vs_random/runs
	$(EVAL) leaderboard --results results/bundled_vs_random --metrics all --out results/bundled_vs_random/leaderboard.md
