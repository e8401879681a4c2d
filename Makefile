# Every target bootstraps .venv by itself (idempotent: reinstalls only when pyproject.toml changed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FORGELAB := $(VENV)/bin/forgelab
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench lint format clean train-segmenter

# train-segmenter: DATA=<vox/taichi "video-preprocessing" root> [EXPERIMENT=segmenter_vox10|segmenter_vox5|segmenter_taichi]
# [ARGS="--trainer.devices 4 ..."]; without DATA the sample experiment runs on the bundled video.
train-segmenter: EXPERIMENT ?= $(if $(DATA),segmenter_vox10,segmenter_sample)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## demo: face extraction on the bundled sample video -> outputs/
demo: $(STAMP)
	$(FORGELAB) faces assets/carphone_pristine.mp4 --out outputs

## test: the whole test suite on CPU
test: $(STAMP)
	$(PY) -m pytest -q

## bench: preprocessing speed, batched vs naive (ratio), on the sample and a synthetic 720p video
bench: $(STAMP)
	$(FORGELAB) bench preprocess --out outputs/bench_preprocess.json

## train-segmenter: motion co-segmentation (GPU when present, DDP over several)
train-segmenter: $(STAMP)
	$(FORGELAB) fit --config experiments/$(EXPERIMENT).yaml $(if $(DATA),--data.init_args.index.init_args.root=$(DATA)) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf outputs .pytest_cache
