# Quick start: `make repro`   (set up + run the quick study: the whole suite on one tower run, dvc.yaml)
#              `make confirm` (the tower-run study: recipe grid, more tower runs, tower comparisons; confirm/dvc.yaml)
#              `make test`    (set up + run the test suite)
VENV   ?= .venv
# the first Python on PATH that pyproject.toml's requires-python accepts (3.11-3.14); `make PYTHON=...` overrides
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11 python3.14; do \
            $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 15))' 2>/dev/null && { command -v $$p; break; }; done)
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# the pipeline's tools (dvc, papermill, jupyter) come from the venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install lock repro confirm test faults paper-smoke weights report walkthrough clean-venv

install: $(STAMP)

# Reinstall when the dependencies change. The exact versions come from requirements.lock: a new release of a
# dependency (PyAV's bundled encoder, numpy) changes the bytes of SynthAVE and so every result, so a clone
# installs the versions the committed run used. `make lock` re-resolves them from pyproject.toml's ranges.
# --compile-bytecode: every stage kernel, torchrun rank and test worker then reads torch & co. from .pyc
# instead of compiling them at import (~6 s per process where PYTHONDONTWRITEBYTECODE is set, as in CI).
$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "no Python 3.11-3.14 on PATH (pyproject.toml requires-python): make PYTHON=/path/to/python3.1x" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode -r requirements.lock
	$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode --no-deps -e .
	$(PY) -m avelib plots-template --out .dvc/plots_template.html  # offline `dvc plots show`
	touch $@

# the README's results tables are regenerated from the reports the run wrote (tests check they match);
# only when a result file is newer than README.md, so a repro with nothing to do takes ~3 s
RESULTS = $(addprefix reports/,metrics.json baselines.json ablations.json finetune.json weak.json crossmodal.json)
repro: install
	dvc repro
	$(MAKE) --no-print-directory README.md

# the tower-run study: its own pipeline and lock; it reuses the quick study's outputs (and runs them first if stale)
confirm: install
	dvc repro confirm/dvc.yaml
	$(PY) -m avelib readme-tables

README.md: $(RESULTS)
	$(PY) -m avelib readme-tables
	touch $@

# two workers, one per core; a test file stays on one worker (the notebook chain shares its module fixture)
test: install
	$(PY) -m pytest -n 2 --dist loadfile

# kill-and-resume of every long stage and same-seed determinism on smoke-sized pipeline copies, and
# 2 torchrun ranks (gloo) against 1 process (~8 min: the uninterrupted and the killed copy run side by side)
faults: install
	$(PY) -m pytest -m "faults or distributed" --durations=8

# the paper command of docs/real-data.md on stand-ins of AVE_Dataset.zip and AudioCLIP-Full-Training.pt (needs ../shared),
# and its release-chain command on stand-in release features
paper-smoke: install
	$(PY) -m pytest -m paper_smoke -s --durations=8

# Download the AudioCLIP release checkpoints (real network; see docs/real-data.md).
weights: install
	$(PY) -m avelib weights --cache models/pretrained

# Re-resolve requirements.lock from pyproject.toml (newest versions inside its ranges, for every Python it
# accepts). New versions may change result bytes: rerun `make repro` and commit the results with the lock.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --quiet -o requirements.lock

report: install
	$(PY) -m avelib report

# re-execute notebooks/walkthrough.ipynb on this checkout's trained models (after `make repro`) and store its outputs
walkthrough: install
	$(PY) -m avelib.walkthrough execute

clean-venv:
	rm -rf $(VENV)
