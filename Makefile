# Every target bootstraps .venv by itself (idempotent: reinstalls only when pyproject.toml changed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FORGELAB := $(VENV)/bin/forgelab
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench compare robustness cross-manipulation lint format clean train-segmenter train-detector fingerprint transfer serve

# Experiments compose: experiments/<system>_<name>.yaml holds only what differs from experiments/base/<system>.yaml
# (LightningCLI merges several --config in order). CONFIGS(EXPERIMENT) gives both.
CONFIGS = --config experiments/base/$(firstword $(subst _, ,$(1))).yaml --config experiments/$(1).yaml

# An experiment name from DATA / DATASET: DATA names an experiment, or <prefix>_<dataset experiment> for a dataset root
# (DATASET=folder|csv|celebdf|ffpp, folder by default; ffpp means its c23 experiment), or <prefix>_sample without DATA.
DATASET_ffpp := ffpp_c23
DATA_IS_EXPERIMENT = $(and $(DATA),$(wildcard experiments/$(DATA).yaml))
EXPERIMENT_FOR = $(if $(DATA_IS_EXPERIMENT),$(DATA),$(1)_$(if $(DATA),$(or $(DATASET_$(DATASET)),$(or $(DATASET),folder)),sample))
DATA_ROOT = $(and $(DATA),$(if $(DATA_IS_EXPERIMENT),,1))

# train-detector: [MODEL=resnext_lstm|attention|multicue] DATA=<dataset root, or an experiment name>
# [DATASET=folder|csv|celebdf|ffpp] [EXPERIMENT=...] [ARGS=...]; without DATA the model's sample experiment (bundled
# video vs self-blended pseudo-fakes) runs. MODEL=attention (or lda): the long-distance attention detector;
# MODEL=multicue (or srm): residual noise + landmarks + quality.
MODEL ?= resnext_lstm
DETECTOR_PREFIX = $(if $(filter attention lda long_distance_attention,$(MODEL)),detector_attention,$(if $(filter multicue multi_cue srm,$(MODEL)),detector_multicue,detector))
train-detector: EXPERIMENT ?= $(call EXPERIMENT_FOR,$(DETECTOR_PREFIX))
train-detector: ROOT_ARG = $(if $(filter csv,$(DATASET)),path,root)

# fingerprint / transfer: [DATA=<dataset root, or an experiment name>] [DATASET=...] [EXPERIMENT=...] [ARGS=...]
fingerprint: EXPERIMENT ?= $(call EXPERIMENT_FOR,fingerprint)
transfer: EXPERIMENT ?= $(call EXPERIMENT_FOR,transfer)

# train-segmenter: DATA=<vox/taichi "video-preprocessing" root> [EXPERIMENT=segmenter_vox10|segmenter_vox5|segmenter_taichi]
# [ARGS="--trainer.devices 4 ..."]; without DATA the sample experiment runs on the bundled video.
train-segmenter: EXPERIMENT ?= $(if $(DATA),segmenter_vox10,segmenter_sample)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,web]'
	touch $(STAMP)

venv: $(STAMP)

## demo: on the bundled sample video -> outputs/: face track; the verdicts of MesoNet (the authors' published
## weights, trained on real deepfakes); a briefly trained detector (real vs self-blended pseudo-fakes), its
## evaluation on held-out frames and its annotated verdict video; and a part swap: the part covering the mouth in the
## sample's most open-mouthed frame swapped into all of it (published checkpoint in pretrained/, else the sample one)
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

## bench: face tracking (vs every-frame and per-frame MTCNN), detect (vs the published way; --out time and memory),
## co-segmentation (Lightning vs plain loop), the web server (upload -> verdict vs the CLI; 20 uploads at once)
bench: $(STAMP)
	$(FORGELAB) bench preprocess --out outputs/bench_preprocess.json
	$(FORGELAB) bench-segmenter --out outputs/bench_segmenter.json
	$(FORGELAB) bench-detector --out outputs/bench_detector.json
	$(FORGELAB) bench-web --out outputs/bench_web.json

## serve: the web page and REST API on http://127.0.0.1:8000/ (ARGS="--host 0.0.0.0 --port 8080 --checkpoint ...");
## serves the newest trained sample run (train one first: make train-detector) and MesoNet's published weights
serve: $(STAMP)
	$(FORGELAB) serve $(ARGS)

## compare: every sample detector (ResNeXt-LSTM, long-distance attention, residual noise + landmarks + quality,
## convolutional traces, MobileNet transfer; each trained here when missing) and MesoNet's published weights through
## one protocol -> outputs/compare/leaderboard.{md,csv,png}. Without pretrained/mobilenetv1_100.ra4_e3600_r224_in1k
## .safetensors the MobileNet row is its random-backbone baseline, and says so.
NEWEST = $$(ls -t outputs/runs/$(1)/version_*/checkpoints/best.ckpt | head -1)
MOBILENET_FILE := pretrained/mobilenetv1_100.ra4_e3600_r224_in1k.safetensors
TRANSFER_SAMPLE = outputs/transfer_sample/mobilenet_transfer_mobilenetv1_100_$(if $(wildcard $(MOBILENET_FILE)),imagenet,random).pt
compare: $(STAMP)
	$(foreach e,detector_sample detector_attention_sample detector_multicue_sample,$(if $(wildcard outputs/runs/$(e)/version_*/checkpoints/best.ckpt),,$(FORGELAB) fit $(call CONFIGS,$(e)) --trainer.enable_progress_bar false &&)) true
	$(if $(wildcard outputs/fingerprint_sample/conv_traces_k3_svm.pt),,$(FORGELAB) fingerprint $(call CONFIGS,fingerprint_sample))
	$(if $(wildcard $(TRANSFER_SAMPLE)),,$(FORGELAB) transfer $(call CONFIGS,transfer_sample) $(if $(wildcard $(MOBILENET_FILE)),,--random-weights))
	$(FORGELAB) compare --checkpoint $(call NEWEST,detector_sample) $(call NEWEST,detector_attention_sample) \
		$(call NEWEST,detector_multicue_sample) outputs/fingerprint_sample/conv_traces_k3_svm.pt \
		outputs/fingerprint_sample/conv_traces_k3_knn.pt $(TRANSFER_SAMPLE) \
		pretrained/mesonet/Meso4_DF.h5 pretrained/mesonet/MesoInception_DF.h5 --out outputs/compare

## robustness: the sample detectors (the demo's ResNeXt-LSTM, the same trained with perturbations, long-distance
## attention, residual noise + landmarks + quality, convolutional traces; each trained when missing) and MesoNet's
## published weights under every perturbation of experiments/robustness/deeperforensics.yaml (H.264 once and twice,
## down-scaling, JPEG, blur, noise, contrast, saturation; 5 levels each) on the sample's held-out second: its real
## frames (3 parts) vs self-blended fakes of them made by forgelab make-fakes -> outputs/robustness/robustness.{md,json}
## and a PNG per detector (resumable: perturbed videos, face caches and scores are kept in outputs/robustness)
ROBUST_RUNS := detector_sample detector_robust_sample detector_attention_sample detector_multicue_sample
robustness: $(STAMP)
	$(foreach e,$(ROBUST_RUNS),$(if $(wildcard outputs/runs/$(e)/version_*/checkpoints/best.ckpt),,$(FORGELAB) fit $(call CONFIGS,$(e)) --trainer.enable_progress_bar false &&)) true
	$(if $(wildcard outputs/fingerprint_sample/conv_traces_k3_svm.pt),,$(FORGELAB) fingerprint $(call CONFIGS,fingerprint_sample))
	$(FORGELAB) make-fakes --dataset single --root assets/carphone_pristine.mp4 --from-split val --segments 3 \
		--method self-blend --variants 3 --split test --out outputs/robustness_sample
	$(FORGELAB) robustness $(foreach e,$(ROBUST_RUNS),--checkpoint $(call NEWEST,$(e))) \
		--checkpoint outputs/fingerprint_sample/conv_traces_k3_svm.pt pretrained/mesonet/MesoInception_DF.h5 \
		--dataset csv --root outputs/robustness_sample/manifest.csv --clips 4 --out outputs/robustness $(ARGS)

## cross-manipulation: the sample detectors (trained on self-blends) and MesoNet's published weights on forgelab's own
## part swaps of the sample's held-out second (forgelab make-fakes with the sample segmenter; sources: skimage's
## astronaut and the sample's middle frame, from its training part; every segment alone) -> outputs/cross_manipulation
SWAP_SET := outputs/cross_manipulation/data
cross-manipulation: $(STAMP)
	$(foreach e,detector_sample detector_attention_sample detector_multicue_sample segmenter_sample,$(if $(wildcard outputs/runs/$(e)/version_*/checkpoints/*.ckpt),,$(FORGELAB) fit $(call CONFIGS,$(e)) --trainer.enable_progress_bar false &&)) true
	mkdir -p outputs/cross_manipulation/sources
	$(PY) -c "from PIL import Image; from skimage.data import astronaut; Image.fromarray(astronaut()).save('outputs/cross_manipulation/sources/astronaut.png')"
	$(FORGELAB) make-fakes --dataset single --root assets/carphone_pristine.mp4 --from-split val --segments 3 \
		--method part-swap --sources outputs/cross_manipulation/sources/astronaut.png assets/carphone_pristine.mp4 \
		--split test --out $(SWAP_SET)
	$(FORGELAB) compare --checkpoint $(call NEWEST,detector_sample) $(call NEWEST,detector_attention_sample) \
		$(call NEWEST,detector_multicue_sample) pretrained/mesonet/Meso4_DF.h5 pretrained/mesonet/MesoInception_DF.h5 \
		--dataset csv --root $(SWAP_SET)/manifest.csv --split test --clips 4 --out outputs/cross_manipulation

## train-detector: ResNeXt-LSTM detector, or MODEL=attention the long-distance attention one (GPU when present, DDP over several)
train-detector: $(STAMP)
	@test -f experiments/$(EXPERIMENT).yaml || { echo "no experiment experiments/$(EXPERIMENT).yaml (MODEL=$(MODEL) DATASET=$(DATASET))"; exit 2; }
	$(FORGELAB) fit $(call CONFIGS,$(EXPERIMENT)) $(if $(DATA_ROOT),--data.init_args.index.init_args.$(ROOT_ARG)=$(DATA)) $(ARGS)

## fingerprint: convolutional traces (seed 002): fingerprints cached, k-NN / SVM / LDA fitted, evaluated and saved
## (without DATA: the bundled sample vs self-blended pseudo-fakes -> outputs/fingerprint_sample)
## transfer: MobileNet transfer learning (seed 004): bottlenecks cached, a softmax layer trained, evaluated and saved
## (needs the ImageNet file pretrained/mobilenetv1_100.ra4_e3600_r224_in1k.safetensors, or ARGS=--random-weights)
fingerprint transfer: $(STAMP)
	@test -f experiments/$(EXPERIMENT).yaml || { echo "no experiment experiments/$(EXPERIMENT).yaml (DATASET=$(DATASET))"; exit 2; }
	$(FORGELAB) $@ $(call CONFIGS,$(EXPERIMENT)) $(if $(DATA_ROOT),--root $(DATA)) $(ARGS)

## train-segmenter: motion co-segmentation (GPU when present, DDP over several)
train-segmenter: $(STAMP)
	$(FORGELAB) fit $(call CONFIGS,$(EXPERIMENT)) $(if $(DATA),--data.init_args.index.init_args.root=$(DATA)) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf outputs .pytest_cache
