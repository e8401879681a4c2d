"""The shared VideoDataModule: batch schema of both sampling modes, cache and on-the-fly decoding,
clip-consistent augmentation, balanced sampling, and a training run through the CLI with its loggers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml

from common.augment import ClipAugment
from common.clips import ClipDataset, clip_positions, eval_starts, spread_positions
from common.data import VideoDataModule
from common.datasets import FolderIndex, VoxIndex
from common.errors import DatasetError
from common.preprocess import PreprocessConfig, run_preprocess
from common.selfblend import SelfBlend
from tests.conftest import copy_video, numbered_frames


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, face_clip: Path) -> tuple[FolderIndex, Path]:
    root = tmp_path_factory.mktemp("ds")
    for i in range(6):
        copy_video(face_clip, root / "real" / f"p{i}" / "a.mp4")
        copy_video(face_clip, root / "fake" / f"p{i}" / "b.mp4")
    index = FolderIndex(str(root), val_fraction=0.34, test_fraction=0.0, group_by_folder=True)
    cache = root.parent / (root.name + "_cache")
    run_preprocess(index.records(), cache, PreprocessConfig(frames="all", crop_size=64, device="cpu"),
                   show_progress=False)  # fmt: skip
    return index, cache


@pytest.fixture(scope="module")
def vox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vox")
    frames = numbered_frames(10, 40, 40)
    for p in range(3):
        for n in range(1 + p):  # person p has p + 1 videos
            d = root / "train" / f"id{p}#yt{n}#0#10.mp4"
            d.mkdir(parents=True)
            for i, f in enumerate(frames):
                iio.imwrite(d / f"{i:07d}.png", f)
    return root


def check_schema(batch: dict, b: int, t: int, size: int) -> None:
    assert batch["video"].shape == (b, t, 3, size, size) and batch["video"].dtype == torch.float32
    assert batch["video"].min() >= 0 and batch["video"].max() <= 1 and batch["video"].std() > 0.01
    assert batch["label"].shape == (b,) and batch["label"].dtype == torch.long
    assert set(batch["label"].tolist()) <= {0, 1}
    assert isinstance(batch["video_id"], list) and len(batch["video_id"]) == b
    assert all(isinstance(v, str) for v in batch["video_id"])
    assert batch["frame_index"].shape == (b, t) and batch["frame_index"].dtype == torch.long


def test_clip_mode_from_cache(cached: tuple[FolderIndex, Path]) -> None:
    index, cache = cached
    dm = VideoDataModule(index, cache_dir=str(cache), clip_len=4, frame_stride=2, size=48, batch_size=3,
                         num_workers=0, eval_clips=3, augment=ClipAugment())  # fmt: skip
    dm.setup("fit")
    assert len(dm.records["train"]) == 8 and len(dm.records["val"]) == 4 and dm.dataset_hash
    batch = next(iter(dm.train_dataloader()))
    check_schema(batch, 3, 4, 48)
    assert (batch["frame_index"].diff(dim=1) == 2).all()  # contiguous with stride 2
    val = dm.dataset("val")
    assert len(val) == 4 * 3
    starts = [val[i]["frame_index"][0].item() for i in range(3)]
    assert starts == eval_starts(12, 4, 2, 3) == [0, 2, 5]
    assert torch.equal(val[1]["video"], val[1]["video"])  # evaluation is deterministic
    b = next(iter(dm.val_dataloader()))
    check_schema(b, 3, 4, 48)


def test_spread_sampling_and_positions() -> None:
    assert spread_positions(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert clip_positions(5, 4, 2, 1).tolist() == [1, 3, 4, 4]  # padded with the last frame


def test_pair_mode_on_the_fly_with_id_sampling(vox_root: Path) -> None:
    aug = ClipAugment(hflip=0.0, time_flip=0.5, brightness=0, contrast=0, saturation=0)
    dm = VideoDataModule(VoxIndex(str(vox_root), val_fraction=0.0), mode="pair", size=32, batch_size=4,
                         num_workers=0, repeats=5, augment=aug)  # fmt: skip
    dm.setup("fit")
    ds = dm.dataset("train")
    assert len(ds) == 3 * 5  # identities x repeats, not videos
    torch.manual_seed(1)
    seen_flip = False
    for batch in dm.train_dataloader():
        check_schema(batch, 4, 2, 32)
        assert (batch["label"] == 0).all()
        for fi, vid in zip(batch["frame_index"], batch["video"]):
            seen_flip |= bool(fi[0] > fi[1])
            # the top-left block encodes the frame number: each frame matches its frame_index
            levels = (vid[:, 0, 2, 2] * 255).round().tolist()
            assert levels == [float(8 * (i % 32)) for i in fi.tolist()]
    assert seen_flip  # time flip swaps source and driving together with their indices


def test_pair_sampling_visits_identities_evenly(vox_root: Path) -> None:
    dm = VideoDataModule(VoxIndex(str(vox_root), val_fraction=0.0), mode="pair", size=16, batch_size=1,
                         num_workers=0, repeats=60)  # fmt: skip
    dm.setup("fit")
    ds = dm.dataset("train")
    people = Counter(ds[i]["video_id"].split("/")[1].split("#")[0] for i in range(len(ds)))
    assert people == {"id0": 60, "id1": 60, "id2": 60}  # not 1:2:3 like the video counts


def test_decode_on_the_fly_with_faces(cached: tuple[FolderIndex, Path]) -> None:
    index, _ = cached
    dm = VideoDataModule(index, clip_len=3, size=48, batch_size=2, num_workers=0, faces_on_the_fly=True,
                         clip_sampling="spread")  # fmt: skip
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    check_schema(batch, 2, 3, 48)
    assert batch["frame_index"][0].tolist() == [0, 6, 11]


def test_fixed_crop_holds_one_region_over_the_frames_of_a_read(sample_video: Path) -> None:
    from common.datasets import SingleVideoIndex
    from common.frames import DecodeSource, covering_square

    regions = np.array([[10, 20, 50, 60], [30, 10, 70, 50]])
    assert covering_square(regions).tolist() == [10, 5, 70, 65]  # the union (10, 10, 70, 60), squared about its centre
    record = SingleVideoIndex(str(sample_video)).records()[0]
    positions = np.array([0, 40])
    moving, _, lm_moving = DecodeSource(True, 64, 1.6).read(record, positions)
    fixed, _, lm_fixed = DecodeSource(True, 64, 1.6, fixed_crop=True).read(record, positions)
    assert fixed.shape == moving.shape == (2, 64, 64, 3)
    # following the face keeps its landmarks in place; one region lets the face move inside it
    shift = lambda lm: float(np.abs(lm[1] - lm[0]).mean())  # noqa: E731
    assert shift(lm_fixed) > 2 * shift(lm_moving) and lm_fixed.min() >= 0 and lm_fixed.max() <= 64


def test_workers_and_balanced_sampling(cached: tuple[FolderIndex, Path]) -> None:
    index, cache = cached
    dm = VideoDataModule(index, cache_dir=str(cache), clip_len=2, size=32, batch_size=4, num_workers=1,
                         balanced=True)  # fmt: skip
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, torch.utils.data.WeightedRandomSampler)
    check_schema(next(iter(loader)), 4, 2, 32)


def test_balanced_weights_even_out_classes(cached: tuple[FolderIndex, Path]) -> None:
    index, cache = cached
    dm = VideoDataModule(index, cache_dir=str(cache), clip_len=2, size=32, num_workers=0, balanced=True)
    dm.setup("fit")
    dm.records["train"] = dm.records["train"] + [r for r in dm.records["train"] if r.label == 0] * 3
    sampler = dm.train_dataloader().sampler
    ds = dm.dataset("train")
    labels = ds.labels()
    assert Counter(labels)[0] == 4 * Counter(labels)[1]
    torch.manual_seed(0)
    drawn = Counter(labels[i] for _ in range(50) for i in sampler)
    assert 0.4 < drawn[1] / sum(drawn.values()) < 0.6


def test_augmentation_is_clip_consistent() -> None:
    frame = torch.rand(3, 32, 32)
    clip = frame.expand(6, 3, 32, 32).clone()
    aug = ClipAugment(hflip=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, jpeg_prob=1.0,
                      blur_prob=1.0, downscale_prob=1.0)  # fmt: skip
    out, params = aug(clip, np.random.default_rng(0))
    assert out.shape == clip.shape and not torch.allclose(out[0], frame, atol=0.05)
    for t in range(1, 6):
        assert torch.equal(out[t], out[0])  # every frame got the same parameters
    assert params["hflip"] and params["jpeg"] is not None
    flipped = ClipAugment.apply(torch.arange(4.0).view(1, 1, 1, 4).expand(2, 3, 1, 4) / 4,
                                {**params, "brightness": 1, "contrast": 1, "saturation": 1, "hue": 0, "jpeg": None,
                                 "blur": None, "downscale": None, "time_flip": False})  # fmt: skip
    assert flipped[0, 0, 0].tolist() == [0.75, 0.5, 0.25, 0.0]


def test_missing_cache_folder(cached: tuple[FolderIndex, Path], tmp_path: Path) -> None:
    dm = VideoDataModule(cached[0], cache_dir=str(tmp_path / "none"))
    with pytest.raises(DatasetError, match="cache folder does not exist"):
        dm.setup("fit")


def test_clip_dataset_len_and_labels(cached: tuple[FolderIndex, Path]) -> None:
    index, cache = cached
    from common.frames import CacheSource

    recs = index.split("val")
    ds = ClipDataset(recs, CacheSource(cache), 4, train=False, clips_per_video=2, size=None)
    assert len(ds) == 2 * len(recs) and ds.labels() == [r.label for r in recs for _ in range(2)]
    assert ds[0]["video"].shape == (4, 3, 64, 64)


def test_training_run_logs_everything(cached: tuple[FolderIndex, Path], tmp_path: Path) -> None:
    from common.commands import main as cli_main

    index, cache = cached
    config = {
        "seed_everything": 0,
        "run": {"name": "tiny", "save_dir": str(tmp_path / "runs"), "media_every_n_steps": 1, "tags": ["test"]},
        "trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "enable_progress_bar": False,
                    "log_every_n_steps": 1},
        "model": {"class_path": "tests.tiny_system.TinyVideoClassifier"},
        "data": {
            "class_path": "common.data.VideoDataModule",
            "init_args": {
                "index": {"class_path": "common.datasets.FolderIndex",
                          "init_args": {"root": index.root.as_posix(), "val_fraction": 0.34, "test_fraction": 0.0,
                                        "group_by_folder": True}},
                "cache_dir": str(cache), "clip_len": 3, "size": 32, "batch_size": 2, "num_workers": 0,
            },
        },
    }  # fmt: skip
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(config))
    assert cli_main(["fit", "--config", str(cfg)]) == 0
    runs = tmp_path / "runs"
    csv_dir = next((runs / "tiny").glob("version_*"))
    metrics = (csv_dir / "metrics.csv").read_text()
    assert "train/loss" in metrics and "val/loss" in metrics
    hparams = yaml.safe_load((csv_dir / "hparams.yaml").read_text())
    assert hparams["dataset_hash"] and len(hparams["dataset_hash"]) == 16
    assert hparams["git_commit"]
    assert hparams["config"]["data"]["init_args"]["clip_len"] == 3
    media = csv_dir / "media"
    assert list((media / "train_first_frame").glob("*.png")) and list((media / "train_clip").glob("*.mp4"))
    assert list((media / "val_summary").glob("*.png"))
    assert (csv_dir / "config.yaml").is_file() and (csv_dir / "run_meta.yaml").is_file()
    assert list((csv_dir / "checkpoints").glob("*.ckpt"))
    wandb_runs = list((runs / "wandb").glob("offline-run-*"))
    assert wandb_runs, "W&B logs offline when no API key is configured"


def test_exclusive_flips_as_the_cosegmentation_original() -> None:
    aug = ClipAugment(hflip=0.5, time_flip=0.5, exclusive_flips=True)
    draws = [aug.sample(np.random.default_rng(i)) for i in range(400)]
    assert not any(d["hflip"] and d["time_flip"] for d in draws)
    time_flips = sum(d["time_flip"] for d in draws)
    hflips = sum(d["hflip"] for d in draws)
    assert 150 < time_flips < 250 and 60 < hflips < 140  # P(hflip) = 0.5 * 0.5
    both = [ClipAugment(hflip=0.5, time_flip=0.5).sample(np.random.default_rng(i)) for i in range(400)]
    assert any(d["hflip"] and d["time_flip"] for d in both)


def test_long_clips_never_jump_gaps_between_cached_windows(sample_video: Path, tmp_path: Path) -> None:
    from common.datasets import VideoRecord
    from common.frames import CacheSource

    record = VideoRecord("sample", str(sample_video), 0, "train", "sample")
    short, long = tmp_path / "short", tmp_path / "long"
    for cache, frames in ((short, "windows:2:10"), (long, "windows:2:30")):
        run_preprocess([record], cache, PreprocessConfig(frames=frames, crop_size=32, device="cpu"),
                       show_progress=False)  # fmt: skip
    train = ClipDataset([record], CacheSource(short), clip_len=20, train=True, size=None)
    with pytest.raises(DatasetError, match="spans 20 consecutive frames, but the longest run available is 10"):
        train[0]
    evaluation = ClipDataset([record], CacheSource(short), clip_len=20, train=False, clips_per_video=2, size=None,
                             self_blend=SelfBlend())  # fmt: skip
    assert "longest run available is 10" in evaluation[0]["failure"]  # scored 0.5 and listed, never silent
    fake_slot = evaluation[1]  # the pseudo-fake slot keeps its label when its clip cannot be read
    assert fake_slot["failure"] and fake_slot["label"] == 1 and fake_slot["video_id"] == "sample#selfblend"
    for train_mode in (True, False):
        ds = ClipDataset([record], CacheSource(long), clip_len=30, train=train_mode, clips_per_video=3, repeats=3,
                         size=None)  # fmt: skip
        for i in range(3):
            idx = ds[i]["frame_index"]
            assert len(idx) == 30 and (idx.diff() == 1).all()  # 30 consecutive frames, no jump over the gap


def test_cache_windows_follow_the_clip_length(tmp_path: Path) -> None:
    from common.datasets import SingleVideoIndex

    dm = VideoDataModule(SingleVideoIndex(str(tmp_path / "x.mp4")), clip_len=40, frame_stride=2,
                         cache_frames="windows:4")  # fmt: skip
    assert dm.span == 79 and dm.resolved_cache_frames() == "windows:4:79"
    assert VideoDataModule(SingleVideoIndex("x"), cache_frames="even:8").resolved_cache_frames() == "even:8"


def test_max_videos_keeps_both_classes(cached: tuple[FolderIndex, Path]) -> None:
    index, cache = cached
    dm = VideoDataModule(index, cache_dir=str(cache), max_videos=2, num_workers=0)
    dm.setup("fit")
    for split in ("train", "val"):
        assert sorted(r.label for r in dm.records[split]) == [0, 1]  # not the first two (both real)
