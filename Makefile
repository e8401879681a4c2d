# Every target bootstraps .venv by itself (idempotent: reinstalls only when pyproject.toml changed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FORGELAB := $(VENV)/bin/forgelab
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench compare lint format clean train-segmenter train-detector

# Experiments compose: experiments/<system>_<name>.yaml holds only what differs from experiments/base/<system>.yaml
# (LightningCLI merges several --config in order). CONFIGS(EXPERIMENT) gives both.
CONFIGS = --config experiments/base/$(firstword $(subst _, ,$(1))).yaml --config experiments/$(1).yaml

# train-detector: [MODEL=resnext_lstm|attention] DATA=<dataset root, or an experiment name>
# [DATASET=folder|csv|celebdf|ffpp] [EXPERIMENT=...] [ARGS=...]; without DATA the model's sample experiment (bundled
# video vs self-blended pseudo-fakes) runs. MODEL=attention (or lda): the long-distance attention detector.
MODEL ?= resnext_lstm
DETECTOR_PREFIX = $(if $(filter attention lda long_distance_attention,$(MODEL)),detector_attention,detector)
DETECTOR_ffpp := ffpp_c23
DATA_IS_EXPERIMENT = $(and $(DATA),$(wildcard experiments/$(DATA).yaml))
train-detector: EXPERIMENT ?= $(if $(DATA_IS_EXPERIMENT),$(DATA),$(DETECTOR_PREFIX)_$(if $(DATA),$(or $(DETECTOR_$(DATASET)),$(or $(DATASET),folder)),sample))
train-detector: ROOT_ARG = $(if $(filter csv,$(DATASET)),path,root)

# train-segmenter: DATA=<vox/taichi "video-preprocessing" root> [EXPERIMENT=segmenter_vox10|segmenter_vox5|segmenter_taichi]
# [ARGS="--trainer.devices 4 ..."]; without DATA the sample experiment runs on the bundled video.
train-segmenter: EXPERIMENT ?= $(if $(DATA),segmenter_vox10,segmenter_sample)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## demo: on the bundled sample video -> outputs/: face track; the verdicts of MesoNet (the authors' published
## weights, trained on real deepfakes); a briefly trained detector (real vs self-blended pseudo-fakes), its
## evaluation on held-out frames and its annotated verdict video; and a part of skimage's astronaut swapped
## into the video (published checkpoint if in pretrained/, else the sample segmenter trained here)
demo: $(STAMP)
	$(FORGELAB) faces assets/carphone_pristine.mp4 --out outputs
	@echo "== MesoNet (Afchar et al., WIFS 2018), the authors' weights trained on Deepfake videos:"
	$(FORGELAB) detect assets/carphone_pristine.mp4 --checkpoint pretrained/mesonet/MesoInception_DF.h5
	$(FORGELAB) detect assets/carphone_pristine.mp4 --checkpoint pretrained/mesonet/Meso4_DF.h5
	@echo "   (the sample is a 176x144 clip: its faces are upscaled about 4x, far from MesoNet's training data)"
	@echo "== the sample detector: ResNeXt-LSTM trained here on one video (real vs self-blended copies of it)"
	$(FORGELAB) fit $(call CONFIGS,detector_sample) --trainer.enable_progress_bar false
	$(FORGELAB) evaluate --dataset single --root assets/carphone_pristine.mp4 --split val --self-blend --clips 48 \
		--out outputs/evaluation_detector_sample
	$(FORGELAB) detect assets/carphone_pristine.mp4 --out outputs/carphone_pristine_detect.mp4 --json \
		> outputs/.detect.json.partial && mv outputs/.detect.json.partial outputs/carphone_pristine_detect.json
	@cat outputs/carphone_pristine_detect.json
	@echo "note: this detector was trained for 4 minutes on one video (real vs self-blended copies of it);"
	@echo "      it shows the pipeline, it is not a detector to trust: train one with make train-detector DATA=..."
	$(FORGELAB) fit $(call CONFIGS,segmenter_sample) --trainer.enable_progress_bar false
	$(FORGELAB) swap-demo --out outputs

## test: the whole test suite on CPU
test: $(STAMP)
	$(PY) -m pytest -q

## bench: face tracking (vs every-frame and per-frame MTCNN), detect (vs the published way; --out time and memory), co-segmentation (Lightning vs plain loop)
bench: $(STAMP)
	$(FORGELAB) bench preprocess --out outputs/bench_preprocess.json
	$(FORGELAB) bench-segmenter --out outputs/bench_segmenter.json
	$(FORGELAB) bench-detector --out outputs/bench_detector.json

## compare: the sample detectors (ResNeXt-LSTM, long-distance attention, convolutional traces; trained here when
## missing) and MesoNet's published weights through one protocol -> outputs/compare/leaderboard.{md,csv,png}
NEWEST = $$(ls -t outputs/runs/$(1)/version_*/checkpoints/best.ckpt | head -1)
compare: $(STAMP)
	$(if $(wildcard outputs/runs/detector_sample/version_*/checkpoints/best.ckpt),,$(FORGELAB) fit $(call CONFIGS,detector_sample) --trainer.enable_progress_bar false)
	$(if $(wildcard outputs/runs/detector_attention_sample/version_*/checkpoints/best.ckpt),,$(FORGELAB) fit $(call CONFIGS,detector_attention_sample) --trainer.enable_progress_bar false)
	$(if $(wildcard outputs/fingerprint_sample/conv_traces_k3_knn.pt),,$(FORGELAB) fingerprint --dataset single --root assets/carphone_pristine.mp4 --self-blend --kernels 3 --margin 1.0 --train-clips 128 --clips 48 --out outputs/fingerprint_sample)
	$(FORGELAB) compare --checkpoint $(call NEWEST,detector_sample) $(call NEWEST,detector_attention_sample) \
		outputs/fingerprint_sample/conv_traces_k3_knn.pt outputs/fingerprint_sample/conv_traces_k3_lda.pt \
		pretrained/mesonet/Meso4_DF.h5 pretrained/mesonet/MesoInception_DF.h5 --out outputs/compare

## train-detector: ResNeXt-LSTM detector, or MODEL=attention the long-distance attention one (GPU when present, DDP over several)
train-detector: $(STAMP)
	@test -f experiments/$(EXPERIMENT).yaml || { echo "no experiment experiments/$(EXPERIMENT).yaml (MODEL=$(MODEL) DATASET=$(DATASET))"; exit 2; }
	$(FORGELAB) fit $(call CONFIGS,$(EXPERIMENT)) $(if $(and $(DATA),$(if $(DATA_IS_EXPERIMENT),,1)),--data.init_args.index.init_args.$(ROOT_ARG)=$(DATA)) $(ARGS)

## train-segmenter: motion co-segmentation (GPU when present, DDP over several)
train-segmenter: $(STAMP)
	$(FORGELAB) fit $(call CONFIGS,$(EXPERIMENT)) $(if $(DATA),--data.init_args.index.init_args.root=$(DATA)) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf outputs .pytest_cache
