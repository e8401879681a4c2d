"""The corpus: every kind of file a person brings, through every command that reads videos.

Each input is built here with ffmpeg or PyAV; each command runs in-process. A case is handled cleanly
when the exit code is the expected one (0 done, 1 bad input, 2 no face), stderr holds at most one line
and no traceback, and no temporary or partial file is left behind.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from common.commands import main as cli_main
from common.encode import write_video
from common.video import VideoReader

ROOT = Path(__file__).resolve().parent.parent
MESONET = ROOT / "pretrained" / "mesonet" / "Meso4_DF.h5"


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def build(folder: Path, frames: np.ndarray, sample: Path) -> dict[str, tuple[Path, int]]:
    """name -> (input path, expected exit code)."""
    face = list(frames[:8])
    cases: dict[str, tuple[Path, int]] = {}

    def add(name: str, code: int, make: Callable[[Path], object]) -> None:
        path = folder / name
        make(path)
        cases[name] = (path, code)

    add("text.mp4", 1, lambda p: p.write_text("not a video\n" * 40))
    add("empty.mp4", 1, lambda p: p.write_bytes(b""))
    add("missing.mp4", 1, lambda p: None)
    add("folder.mp4", 1, lambda p: p.mkdir())
    add("still_jpeg.mp4", 1, lambda p: Image.fromarray(frames[0]).save(p, format="JPEG"))
    add(
        "audio_only.mp4",
        1,
        lambda p: ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:a", "aac", str(p)),
    )
    whole = write_video(folder / "whole.mp4", face, 25)
    add("truncated_tail.mp4", 1, lambda p: p.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2]))
    add("truncated_head.mp4", 1, lambda p: p.write_bytes(sample.read_bytes()[: sample.stat().st_size // 2]))
    add("one_frame.mp4", 0, lambda p: write_video(p, face[:1], 25))
    add("two_frames.mp4", 0, lambda p: write_video(p, face[:2], 25))
    noise = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    add("tiny_32x32.mp4", 2, lambda p: write_video(p, list(noise), 25))
    add("odd_177x143.mp4", 0, lambda p: write_video(p, [f[:143, :177] for f in face], 25))
    add("face_4k.mp4", 0, lambda p: write_video(
        p, [np.asarray(Image.fromarray(f).resize((3840, 2160))) for f in face[:2]], 25))  # fmt: skip
    for name, extra in (("grey.mp4", ["-pix_fmt", "gray"]), ("ten_bit.mp4", ["-pix_fmt", "yuv420p10le"]),
                        ("vp9.webm", ["-c:v", "libvpx-vp9", "-b:v", "300k"]), ("matroska.mkv", []),
                        ("quicktime.mov", []), ("vidéo 顔.mp4", [])):  # fmt: skip
        codec = [] if "-c:v" in extra else ["-c:v", "libx264"]
        add(name, 0, lambda p, e=extra, c=codec: ffmpeg("-i", str(whole), *c, *e, str(p)))
    stored = write_video(folder / "stored.mp4", [np.rot90(f, -1) for f in face], 25)
    add("phone_rotated_90.mp4", 0, lambda p: ffmpeg("-display_rotation", "90", "-i", str(stored), "-c", "copy", str(p)))
    setpts = "if(lt(N,4),N/30,4/30+(N-4)/10)/TB"
    add("variable_rate.mp4", 0, lambda p: ffmpeg("-i", str(whole), "-vf", f"setpts='{setpts}'", "-fps_mode",
                                                 "passthrough", "-c:v", "libx264", str(p)))  # fmt: skip
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, sample_frames: np.ndarray,
           sample_video: Path) -> dict[str, tuple[Path, int]]:  # fmt: skip
    return build(tmp_path_factory.mktemp("corpus"), sample_frames, sample_video)


COMMANDS = ("detect", "detect --out", "faces", "preprocess")


def command_line(command: str, video: Path, out: Path) -> list[str]:
    """The arguments of one corpus run (small settings: a few frames, MesoNet's published weights)."""
    detect = ["detect", str(video), "--checkpoint", str(MESONET), "--clips", "1", "--frames", "2"]
    if command == "detect":
        return detect
    if command == "detect --out":
        return [*detect, "--out", str(out / "annotated.mp4")]
    if command == "faces":
        return ["faces", str(video), "--frames", "even:4", "--crop-size", "48", "--out", str(out)]
    root = dataset_with(video, out)
    return ["preprocess", "--dataset", "folder", "--root", str(root), "--frames", "even:4", "--crop-size", "48",
            "--out", str(out / "cache")]  # fmt: skip


def dataset_with(video: Path, out: Path) -> Path:
    """A folder dataset: ``video`` as its only real video beside one good fake (a copy of the sample)."""
    import shutil

    root = out / "data"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    shutil.copyfile(ROOT / "assets" / "carphone_pristine.mp4", root / "fake" / "good.mp4")
    if video.is_dir():
        (root / "real" / video.name).mkdir()
    elif video.exists():
        shutil.copyfile(video, root / "real" / video.name)
    return root


def test_every_input_through_every_command(corpus: dict[str, tuple[Path, int]], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    clean, problems = 0, []
    for command in COMMANDS:
        for name, (video, code) in corpus.items():
            if command == "preprocess" and name == "missing.mp4":
                continue  # a folder dataset cannot hold a missing file
            out = tmp_path / f"{command.replace(' ', '_')}-{len(problems)}-{clean}"
            out.mkdir()
            try:
                got = cli_main(command_line(command, video, out))
            except SystemExit as exc:  # argparse
                got = int(exc.code or 0)
            # progress bars also go to stderr: the messages are the lines forgelab writes
            err = [e for e in capsys.readouterr().err.splitlines() if e.startswith("forgelab ") or "Traceback" in e]
            if command == "preprocess" and name == "folder.mp4":
                code = 0  # an empty folder in a dataset is not a video: not indexed
            elif command == "preprocess" and code in (1, 2):
                code = 3  # preprocess records a bad video in failures.csv and goes on
            leftovers = [p for p in out.rglob("*") if "partial" in p.name or p.parent.name == ".tmp"]
            ok = got == code and len(err) <= 1 and not any("Traceback" in e for e in err) and not leftovers
            if ok and command == "detect --out" and code == 0:
                with VideoReader(video) as src, VideoReader(out / "annotated.mp4") as dst:
                    w, h = src.info.width, src.info.height
                    ok = (dst.info.width, dst.info.height) == (w, h)  # the original size, odd ones too
                    ok = ok and dst.info.num_frames == src.info.num_frames
            if ok:
                clean += 1
            else:
                problems.append(f"{command} {name}: exit {got} (expected {code}), stderr {err}, leftovers {leftovers}")
    total = len(COMMANDS) * len(corpus) - 1
    print(f"bad-input corpus: {clean}/{total} cases handled cleanly")
    assert not problems, f"{clean}/{total} clean:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real detector and segmenter checkpoints, and every broken kind of file a download can leave."""
    import torch

    from detection.benchmark import sample_sized_checkpoint

    folder = tmp_path_factory.mktemp("ckpts")
    detector = sample_sized_checkpoint(folder / "detector.ckpt")
    fx = torch.load(ROOT / "tests" / "data" / "coseg_parity_A.pt", weights_only=True)
    segmenter = folder / "segmenter.pth.tar"
    torch.save({"segmentation_module": fx["segmentation_module"], "reconstruction_module": fx["reconstruction_module"],
                "epoch": 0}, segmenter)  # fmt: skip
    broken = {
        "empty.ckpt": b"",
        "html.ckpt": b"<!DOCTYPE html><html>Google Drive - quota exceeded</html>",
        "truncated.ckpt": detector.read_bytes()[:5000],
        "random.ckpt": np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes(),
        "numpy.npy": b"\x93NUMPY" + bytes(200),
    }
    for name, data in broken.items():
        (folder / name).write_bytes(data)
    return {"detector": detector, "segmenter": segmenter, **{n: folder / n for n in broken}}


def test_every_bad_checkpoint_through_every_command(
    checkpoints: dict[str, Path], tmp_path: Path, sample_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from skimage.data import astronaut

    face = tmp_path / "face.png"
    Image.fromarray(astronaut()).save(face)
    commands = {
        "detect": lambda c: ["detect", str(sample_video), "--checkpoint", str(c)],
        "evaluate": lambda c: [
            "evaluate",
            "--checkpoint",
            str(c),
            "--dataset",
            "single",
            "--root",
            str(sample_video),
            "--out",
            str(tmp_path / "eval"),
        ],  # fmt: skip
        "swap": lambda c: [
            "swap",
            "--checkpoint",
            str(c),
            "--source",
            str(face),
            "--target",
            str(sample_video),
            "--parts",
            "1",
            "--out",
            str(tmp_path / "swap.mp4"),
        ],  # fmt: skip
        "segments": lambda c: [
            "segments",
            "--checkpoint",
            str(c),
            "--image",
            str(face),
            "--out",
            str(tmp_path / "s.png"),
        ],
        "export-segmenter": lambda c: [
            "export-segmenter",
            "--checkpoint",
            str(c),
            "--out",
            str(tmp_path / "x.pth.tar"),
        ],
    }
    wrong = {"detect": "segmenter", "evaluate": "segmenter", "swap": "detector", "segments": "detector",
             "export-segmenter": "detector"}  # fmt: skip
    problems, runs = [], 0
    for command, argv in commands.items():
        for kind in ("empty.ckpt", "html.ckpt", "truncated.ckpt", "random.ckpt", "numpy.npy", wrong[command]):
            runs += 1
            path = checkpoints[kind]
            got = cli_main(argv(path))
            err = [e for e in capsys.readouterr().err.splitlines() if e.startswith("forgelab ") or "Traceback" in e]
            if not (got == 1 and len(err) == 1 and str(path) in err[0] and "Traceback" not in err[0]):
                problems.append(f"{command} {kind}: exit {got}, stderr {err}")
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".mp4", ".png", ".tar") and p.name != "face.png"]
    assert not problems, f"{runs - len(problems)}/{runs} clean:\n" + "\n".join(problems)
