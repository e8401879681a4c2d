"""Every experiment file, composed with its base and shrunk to the CPU: two training steps, a validation and
checkpointing, so every ``monitor:`` key is checked. Experiments are discovered by glob; the dataset each one
reads is faked by its index class, so a new experiment needs no edit here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import pytest
import yaml

from common.assets import SAMPLE_VIDEO
from common.weights import read_checkpoint
from tests.conftest import copy_video, numbered_frames

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("fingerprint", "transfer")  # experiments of plain commands: option files, not LightningCLI configs
ALL_EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
EXPERIMENTS = [e for e in ALL_EXPERIMENTS if e.split("_")[0] not in COMMANDS]
COMMAND_EXPERIMENTS = [e for e in ALL_EXPERIMENTS if e.split("_")[0] in COMMANDS]
INDEX = "--data.init_args.index.init_args."


def base_of(experiment: str) -> Path:
    """``experiments/<system>_<name>.yaml`` composes ``experiments/base/<system>.yaml``."""
    return ROOT / "experiments" / "base" / f"{experiment.split('_')[0]}.yaml"


def composed(experiment: str) -> dict:
    """The experiment over its base (nested dicts merged; enough to read class paths here)."""

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return out

    return merge(yaml.safe_load(base_of(experiment).read_text()),
                 yaml.safe_load((ROOT / "experiments" / f"{experiment}.yaml").read_text()) or {})  # fmt: skip


# ---------------------------------------------------------------- tiny datasets, by index class
def folder_tree(root: Path, clip: Path) -> list[str]:
    for i in range(3):
        copy_video(clip, root / "real" / f"r{i}.mp4")
        copy_video(clip, root / "fake" / f"f{i}.mp4")
    return [f"{INDEX}root={root}", f"{INDEX}val_fraction=0.34", f"{INDEX}test_fraction=0"]


def csv_manifest(root: Path, clip: Path) -> list[str]:
    folder_tree(root, clip)
    rows = [f"real/r{i}.mp4,real,{'train' if i else 'val'}" for i in range(3)]
    rows += [f"fake/f{i}.mp4,fake,{'train' if i else 'val'}" for i in range(3)]
    (root / "m.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    return [f"{INDEX}path={root / 'm.csv'}"]


def celebdf_tree(root: Path, clip: Path) -> list[str]:
    """A small Celeb-DF v2 layout: 6 celebrities swapped in a ring, 2 YouTube videos, a 2-video test list."""
    for i in range(6):
        copy_video(clip, root / "Celeb-real" / f"id{i}_0000.mp4")
        copy_video(clip, root / "Celeb-synthesis" / f"id{i}_id{(i + 1) % 6}_0000.mp4")
    for n in range(2):
        copy_video(clip, root / "YouTube-real" / f"{n:05d}.mp4")
    (root / "List_of_testing_videos.txt").write_text("1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id5_id0_0000.mp4\n")
    return [f"{INDEX}root={root}", f"{INDEX}val_fraction=0.3"]


def ffpp_tree(root: Path, clip: Path) -> list[str]:
    from tests.test_datasets import make_ffpp

    make_ffpp(root)
    make_ffpp(root, "c40", splits=False)  # the same videos at both compressions
    for p in root.rglob("*.mp4"):
        p.write_bytes(clip.read_bytes())
    return [f"{INDEX}root={root}", f"{INDEX}methods=[Deepfakes]"]


def vox_tree(root: Path, clip: Path) -> list[str]:
    frames = numbered_frames(4, 32, 32)
    for split, people in (("train", 3), ("test", 1)):
        for p in range(people):
            d = root / split / f"id{p}#yt#0#4.mp4"
            d.mkdir(parents=True)
            for i, f in enumerate(frames):
                iio.imwrite(d / f"{i:07d}.png", f)
    return [f"{INDEX}root={root}"]


def sample_video(root: Path, clip: Path) -> list[str]:
    return [f"{INDEX}path={SAMPLE_VIDEO}"]


DATASETS: dict[str, Callable[[Path, Path], list[str]]] = {
    "common.datasets.FolderIndex": folder_tree,
    "common.datasets.CsvIndex": csv_manifest,
    "common.datasets.CelebDFIndex": celebdf_tree,
    "common.datasets.FaceForensicsIndex": ffpp_tree,
    "common.datasets.VoxIndex": vox_tree,
    "common.datasets.SingleVideoIndex": sample_video,
}

# ---------------------------------------------------------------- tiny models, by class
DETECTOR = "--model.init_args.detector.init_args."
SHRINK: dict[str, list[str]] = {
    "detection.models.ResNeXtLSTM": [
        f"{DETECTOR}trunk=resnet18",
        f"{DETECTOR}pretrained=false",
        f"{DETECTOR}hidden_size=8",
        "--data.init_args.size=32",
    ],  # fmt: skip
    "detection.models.MesoNet": [],  # 28 k parameters at its fixed 256 px
    "detection.models.MultiCueDetector": [
        f"{DETECTOR}trunk=resnet18",
        f"{DETECTOR}pretrained=false",
        f"{DETECTOR}noise_width=4",
        f"{DETECTOR}width=16",
        f"{DETECTOR}size=64",
        "--data.init_args.size=64",
    ],  # fmt: skip
    "detection.models.LongDistanceAttentionDetector": [
        f"{DETECTOR}size=70",
        f"{DETECTOR}vit_args={{img_size: 64, patch_size: 8, embed_dim: 16, num_heads: 2}}",
        f"{DETECTOR}latent_dim=8",
        f"{DETECTOR}pretrained_vit=false",
        "--data.init_args.size=70",
        "--data.init_args.clip_len=3",  # n = 3 consecutive frames per tested frame
        "--data.init_args.cache_frames=windows:2",
    ],  # fmt: skip
    "generation.system.SegmenterSystem": [
        *(
            f"--model.init_args.{k}={v}"
            for k, v in {
                "seg_block_expansion": 4,
                "seg_max_features": 16,
                "seg_num_blocks": 3,
                "rec_block_expansion": 4,
                "rec_max_features": 16,
                "rec_num_bottleneck_blocks": 1,
                "vgg": "random",
                "perceptual_weights": "[10,10,10,0,0]",  # 32-px pyramid: VGG deeper than relu3_1 has no pixels left
            }.items()
        ),
        "--data.init_args.size=32",
    ],  # fmt: skip
}


def test_every_experiment_has_its_base() -> None:
    assert {"detector_sample", "detector_celebdf", "detector_ffpp_c23", "segmenter_sample", "segmenter_vox10"} <= set(
        EXPERIMENTS
    )
    assert {"fingerprint_sample", "fingerprint_ffpp_c23", "transfer_sample", "transfer_celebdf"} <= set(
        COMMAND_EXPERIMENTS
    )
    for name in ALL_EXPERIMENTS:
        assert base_of(name).is_file(), f"{name}: no experiments/base/{name.split('_')[0]}.yaml"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, face_clip: Path) -> Callable[[str, str], tuple[list[str], Path]]:
    """One fake dataset per index class and one face cache per (index, model) for the whole module, so
    experiments on the same layout do not cut the same faces again (the cache is resumable)."""
    root = tmp_path_factory.mktemp("experiments")
    made: dict[str, list[str]] = {}

    def get(index: str, model: str) -> tuple[list[str], Path]:
        if index not in made:
            made[index] = DATASETS[index](root / index.rsplit(".", 1)[-1], face_clip)
        return made[index], root / "caches" / f"{index.rsplit('.', 1)[-1]}-{model.rsplit('.', 1)[-1]}"

    return get


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_validates_and_checkpoints(experiment: str, tmp_path: Path, shared) -> None:
    from common.commands import main as cli_main

    cfg = composed(experiment)
    index = cfg["data"]["init_args"]["index"]["class_path"]
    model = cfg["model"]["class_path"]
    if model == "detection.system.DetectionSystem":
        model = cfg["model"]["init_args"]["detector"]["class_path"]
    data_args, cache = shared(index, model)
    args = ["fit", "--config", str(base_of(experiment)), "--config", str(ROOT / "experiments" / f"{experiment}.yaml"),
            f"--run.save_dir={tmp_path}", "--run.wandb=false", "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0",
            "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu",
            "--trainer.devices=1", "--data.init_args.num_workers=0", "--data.init_args.batch_size=2",
            *data_args]  # fmt: skip
    if cfg["data"]["init_args"].get("mode", "clip") == "clip":
        args += ["--data.init_args.clip_len=2", "--data.init_args.eval_clips=2",
                 "--data.init_args.cache_frames=windows:2", f"--data.init_args.cache_dir={cache}"]  # fmt: skip
    args += SHRINK[model]  # after the clip settings: a model may need longer clips
    clip_len = next((int(a.split("=")[1]) for a in reversed(args) if a.startswith("--data.init_args.clip_len=")), None)
    assert cli_main(args) == 0
    run = next((tmp_path / cfg["run"]["name"]).glob("version_*"))
    monitors = [c["init_args"]["monitor"] for c in cfg["trainer"]["callbacks"] if "monitor" in c.get("init_args", {})]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert monitors and all(m in header for m in monitors)  # every monitored key is logged
    ckpts = {p.name for p in (run / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in ckpts and len(ckpts) >= 2  # the monitored best and the last
    if model.startswith("detection."):
        stored = read_checkpoint(run / "checkpoints" / "last.ckpt")
        stored_class = stored["hyper_parameters"]["detector"]["class_path"]
        assert stored_class.rsplit(".", 1)[-1] == model.rsplit(".", 1)[-1]  # the detector rebuilds from the file
        assert stored["input_spec"]["frames"] == clip_len  # the clip length it trained on, for detect / evaluate


LAYOUT_INDEX = {"folder": "FolderIndex", "csv": "CsvIndex", "celebdf": "CelebDFIndex", "ffpp": "FaceForensicsIndex",
                "single": "SingleVideoIndex"}  # fmt: skip
SHRINK_COMMAND = {
    "fingerprint": ["--kernels", "3", "--grid", "1", "--classifiers", "lda", "--iterations", "5", "--size", "48"],
    "transfer": ["--random-weights", "--steps", "5", "--size", "64"],
}


@pytest.mark.parametrize("experiment", COMMAND_EXPERIMENTS)
def test_command_experiment_fits_evaluates_and_saves(experiment: str, tmp_path: Path, shared) -> None:
    """A fingerprint / transfer option file over its base, on its dataset layout faked, shrunk: it runs to the end
    and saves a detector file that loads."""
    from common.commands import main as cli_main
    from detection.loading import load_detector

    command = experiment.split("_")[0]
    options = {**yaml.safe_load(base_of(experiment).read_text()),
               **yaml.safe_load((ROOT / "experiments" / f"{experiment}.yaml").read_text())}  # fmt: skip
    assert options.get("out", "").startswith("outputs/"), "each experiment writes its own outputs/ folder"
    data_args, _ = shared(f"common.datasets.{LAYOUT_INDEX[options['dataset']]}", command)
    root = next(a.split("=", 1)[1] for a in data_args if a.startswith((f"{INDEX}root=", f"{INDEX}path=")))
    extra = ["--methods", "Deepfakes"] if options["dataset"] == "ffpp" else []
    args = [command, "--config", str(base_of(experiment)), "--config", str(ROOT / "experiments" / f"{experiment}.yaml"),
            "--root", root, *extra, "--train-clips", "2", "--clips", "2", *SHRINK_COMMAND[command],
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert cli_main(args) == 0
    saved = sorted((tmp_path / "out").glob("conv_traces_*.pt")) + sorted((tmp_path / "out").glob("mobilenet_*.pt"))
    assert saved, "no detector file written"
    assert load_detector(saved[0], "cpu").spec.frames == 1
