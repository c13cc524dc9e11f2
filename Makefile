# Quick start: `make repro` (set up + run the pipeline on the embedded SynthAVE default)
#              `make test`  (set up + run the test suite)
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# the pipeline's tools (dvc, papermill, jupyter) come from the venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install repro test faults paper-smoke weights report clean-venv

install: $(STAMP)

# Reinstall when the declared dependencies change; uv resolves and installs in seconds when cached.
# --compile-bytecode: every stage kernel, torchrun rank and test worker then reads torch & co. from .pyc
# instead of compiling them at import (~6 s per process where PYTHONDONTWRITEBYTECODE is set, as in CI).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode -e .
	$(PY) -m avelib plots-template --out .dvc/plots_template.html  # offline `dvc plots show`
	touch $@

# the README's results tables are regenerated from the reports the run wrote (tests check they match);
# only when a result file is newer than README.md, so a repro with nothing to do takes ~3 s
RESULTS = $(addprefix reports/,metrics.json baselines.json ablations.json finetune.json tower_runs.json weak.json \
          crossmodal.json)
repro: install
	dvc repro
	$(MAKE) --no-print-directory README.md

README.md: $(RESULTS)
	$(PY) -m avelib readme-tables
	touch $@

# two workers, one per core; a test file stays on one worker (the notebook chain shares its module fixture)
test: install
	$(PY) -m pytest -n 2 --dist loadfile

# kill-and-resume of every long stage and same-seed determinism on smoke-sized pipeline copies, and
# 2 torchrun ranks (gloo) against 1 process (~6 min: the uninterrupted and the killed copy run side by side)
faults: install
	$(PY) -m pytest -m "faults or distributed"

# the README's paper command on stand-ins of AVE_Dataset.zip and AudioCLIP-Full-Training.pt (needs ../shared),
# and its release-chain command on stand-in release features
paper-smoke: install
	$(PY) -m pytest -m paper_smoke -s

# Download the AudioCLIP release checkpoints (real network; see README "Switching to the real AVE dataset, real AudioCLIP weights and a GPU").
weights: install
	$(PY) -m avelib weights --cache models/pretrained

report: install
	$(PY) -m avelib report

clean-venv:
	rm -rf $(VENV)
