"""Outputs checked before the work, failed writes reported (never exit 0 with a corrupt file), several inputs,
images in any orientation and colour mode, usage errors apart from "no face"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.commands import USAGE_EXIT
from common.commands import main as cli_main
from common.encode import write_video
from common.errors import OutputError, VideoWriteError
from common.outputs import output_dir, output_file
from common.video import VideoReader, read_image

ROOT = Path(__file__).resolve().parent.parent
MESONET = ROOT / "pretrained" / "mesonet" / "Meso4_DF.h5"


def test_output_paths_are_checked(tmp_path: Path) -> None:
    deep = output_file(tmp_path / "new" / "deeper" / "x.mp4")
    assert deep.parent.is_dir()  # missing parents are created
    (tmp_path / "a_file").write_text("x")
    cases = [
        (lambda: output_file(tmp_path), "is an existing folder"),
        (lambda: output_file(tmp_path / "a_file" / "x.mp4"), "is a file, not a folder"),
        (lambda: output_dir(tmp_path / "a_file"), "is an existing file"),
        (lambda: output_dir(tmp_path / "a_file" / "sub"), "is a file, not a folder"),
        (lambda: output_file("/proc/forgelab.mp4"), "pseudo file system"),
    ]
    for call, message in cases:
        with pytest.raises(OutputError, match=message):
            call()


@pytest.mark.parametrize(
    "argv",
    [
        ["detect", "{video}", "--checkpoint", str(MESONET), "--out", "{bad}/x.mp4"],
        ["faces", "{video}", "--out", "{bad}/sub"],
        [
            "swap",
            "--checkpoint",
            "{bad}",
            "--source",
            "{bad}",
            "--target",
            "{video}",
            "--parts",
            "1",
            "--out",
            "{bad}/x.mp4",
        ],  # fmt: skip
        ["segments", "--checkpoint", "{bad}", "--image", "{bad}", "--out", "{bad}/x.png"],
        ["preprocess", "--dataset", "single", "--root", "{video}", "--out", "{bad}/cache"],
    ],
)
def test_commands_refuse_a_bad_output_before_any_work(argv: list[str], tmp_path: Path, sample_video: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    bad = tmp_path / "a_file"
    bad.write_text("not a folder")
    args = [a.format(video=sample_video, bad=bad) for a in argv]
    assert cli_main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_detect_goes_on_after_a_bad_video_and_refuses_colliding_outputs(
    tmp_path: Path, sample_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.mp4"
    assert cli_main(["detect", str(sample_video), str(missing), "--checkpoint", str(MESONET)]) == 1
    out = capsys.readouterr()
    assert "carphone_pristine.mp4: " in out.out and "missing.mp4" not in out.out
    assert out.err.strip().splitlines() == [f"forgelab detect: error: cannot read video {missing}: file does not exist"]
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "clip.mp4").write_bytes(sample_video.read_bytes())
    argv = ["detect", str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4"), "--checkpoint", str(MESONET),
            "--out", str(tmp_path / "annotated")]  # fmt: skip
    assert cli_main(argv) == 1
    assert "would both be annotated into" in capsys.readouterr().err


FULL_DISK = """
import numpy as np, resource, sys
from common.errors import VideoWriteError
from common.encode import write_video
resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))  # the file system is full after 150 kB
rng = np.random.default_rng(0)
try:
    write_video(sys.argv[1], (rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(60)), 25)
except VideoWriteError as exc:
    print(exc)
"""


def test_a_full_disk_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(target)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"cannot write video {target}: "), proc.stdout
    assert list(tmp_path.iterdir()) == []  # no corrupt file, no temporary file


def test_encoder_failure_is_reported(tmp_path: Path) -> None:
    frames = [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)]
    with pytest.raises(VideoWriteError, match="frame 1 has size 16x16"):
        write_video(tmp_path / "x.mp4", frames, 25)
    assert list(tmp_path.iterdir()) == []


def test_written_videos_have_ordinary_permissions(tmp_path: Path) -> None:
    path = write_video(tmp_path / "x.mp4", [np.zeros((32, 32, 3), np.uint8)] * 3, 25)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with VideoReader(path) as r:
        assert r.info.num_frames == 3


def test_images_are_read_upright_in_any_colour_mode(tmp_path: Path) -> None:
    from skimage.data import astronaut

    rgb = astronaut()
    img = Image.fromarray(rgb)
    sideways = img.transpose(Image.Transpose.ROTATE_90)
    exif = sideways.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": a phone photo taken in portrait
    sideways.save(tmp_path / "exif.jpg", exif=exif, quality=95)
    img.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    img.convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    img.convert("RGBA").save(tmp_path / "alpha.png")
    for name, tolerance in (("exif.jpg", 4), ("cmyk.jpg", 4), ("palette.png", 40), ("alpha.png", 0)):
        out = read_image(tmp_path / name)
        assert out.shape == rgb.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - rgb).mean() <= tolerance, name
    grey = read_image(tmp_path / "grey16.png")
    assert np.array_equal(grey[..., 1], rgb[..., 0])


@pytest.mark.parametrize(
    "argv",
    [
        ["detect", "--frames", "0", "x.mp4"],
        ["detect", "--clips", "-1", "x.mp4"],
        ["faces", "x.mp4", "--frames", "even:0"],
        ["faces", "x.mp4", "--crop-size", "8"],  # below what any detector or segmenter accepts
        ["preprocess", "--root", "r", "--out", "o", "--batch-size", "0"],
        [
            "swap",
            "--checkpoint",
            "c",
            "--source",
            "s",
            "--target",
            "t",
            "--parts",
            "1",
            "--out",
            "o.mp4",
            "--size",
            "0",
        ],
    ],
)
def test_usage_errors_are_not_the_no_face_code(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    assert exc.value.code == USAGE_EXIT != 2
    assert "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_phone_rotation_is_applied(degrees: int, tmp_path: Path, sample_frames: np.ndarray) -> None:
    """A clip stored sideways with a display rotation (as phones record) is read upright at its display size;
    the face is found where it is in the upright original, and the annotated copy comes out upright."""
    import imageio_ffmpeg

    from common.faces import FaceExtractor
    from detection.annotate import write_annotated

    frames = sample_frames[:24]
    stored = write_video(tmp_path / "stored.mp4", [np.rot90(f, -degrees // 90) for f in frames], 25)
    phone = tmp_path / "phone.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", str(degrees),
                    "-i", str(stored), "-c", "copy", str(phone)], check=True)  # fmt: skip
    with VideoReader(phone) as r:
        assert (r.info.width, r.info.height) == (176, 144)
        upright = r.read([0, 12])
    assert np.abs(upright.astype(int) - frames[[0, 12]]).mean() < 6  # only the re-encoding differs
    extractor = FaceExtractor(crop_size=64, device="cpu")
    found, original = extractor.detect(upright), extractor.detect(frames[[0, 12]])
    for a, b in zip(found, original):
        assert np.abs(a.boxes[np.argmax(a.scores)] - b.boxes[np.argmax(b.scores)]).max() < 4
    result = {"verdict": "REAL", "confidence": 80.0, "p_fake": 0.2, "clips": [{"start": 0, "end": 3, "p_fake": 0.2}]}
    out = write_annotated(phone, tmp_path / "annotated.mp4", result, extractor)
    with VideoReader(out) as r:
        assert (r.info.width, r.info.height, r.info.num_frames) == (176, 144, 24)


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Path:
    """The sample re-timed as phones record: 40 frames at 30 fps, 40 at 10 fps, 40 at 30 fps (B-frames on)."""
    import imageio_ffmpeg

    out = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    setpts = "if(lt(N,40),N/30,if(lt(N,80),40/30+(N-40)/10,40/30+4+(N-80)/30))/TB"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(sample_video),
                    "-vf", f"setpts='{setpts}'", "-fps_mode", "passthrough", "-c:v", "libx264", "-bf", "2",
                    str(out)], check=True)  # fmt: skip
    return out


def test_variable_frame_rate_frames_are_numbered_exactly(vfr_clip: Path, sample_frames: np.ndarray) -> None:
    with VideoReader(vfr_clip) as r:
        assert r.info.num_frames == 120
        times = r.frame_times()
        assert times is not None
        assert np.allclose(np.diff(times)[[0, 45, 100]], [1 / 30, 1 / 10, 1 / 30], atol=1e-3)
        streamed = np.stack([f for _, f in r.iter_frames()])
        picked = r.read([90, 10, 45, 45])
    assert len(streamed) == 120
    # frame i is the source's frame i (timestamp x average rate would skip and repeat frames here)
    errors = np.abs(streamed.astype(int) - sample_frames.astype(int)).mean(axis=(1, 2, 3))
    shifted = np.abs(streamed[1:].astype(int) - sample_frames[:-1].astype(int)).mean(axis=(1, 2, 3))
    assert errors.max() < 6 and (errors[1:] < shifted).mean() > 0.9
    assert np.array_equal(picked, streamed[[90, 10, 45, 45]])  # random access agrees with streaming


def test_variable_frame_rate_outputs_keep_their_timestamps(vfr_clip: Path, tmp_path: Path) -> None:
    from common.faces import FaceExtractor
    from detection.annotate import write_annotated

    result = {"verdict": "REAL", "confidence": 80.0, "p_fake": 0.2, "clips": [{"start": 0, "end": 3, "p_fake": 0.2}]}
    out = write_annotated(vfr_clip, tmp_path / "annotated.mp4", result, FaceExtractor(crop_size=64, device="cpu"))
    with VideoReader(vfr_clip) as a, VideoReader(out) as b:
        assert b.info.num_frames == 120
        assert np.abs(a.frame_times() - b.frame_times()).max() < 1e-3  # audio stays in sync


def test_a_still_image_named_like_a_video_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skimage.data import astronaut

    fake = tmp_path / "photo.mp4"
    Image.fromarray(astronaut()).save(fake, format="JPEG")
    assert cli_main(["faces", str(fake), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"forgelab faces: error: cannot read video {fake}: this is a still image (jpeg), not a video"]


LIMITED = """
import resource, sys
from common.commands import main
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))  # a nearly full disk
sys.exit(main(sys.argv[2:]))
"""


def test_commands_on_a_full_disk_fail_cleanly(tmp_path: Path, sample_video: Path) -> None:
    """``detect --out``, ``swap`` and ``evaluate`` when writes fail midway: exit 1, one line naming the output,
    and nothing left in the output folder (the issue's corrupt mp4 with exit 0, or metrics.json without
    its PNGs)."""
    import torch
    from skimage.data import astronaut

    fx = torch.load(ROOT / "tests" / "data" / "coseg_parity_A.pt", weights_only=True)
    segmenter = tmp_path / "segmenter.pth.tar"
    torch.save({"segmentation_module": fx["segmentation_module"], "reconstruction_module": fx["reconstruction_module"],
                "epoch": 0}, segmenter)  # fmt: skip
    face = tmp_path / "face.png"
    Image.fromarray(astronaut()).save(face)
    cases = {
        "detect": ["detect", str(sample_video), "--checkpoint", str(MESONET), "--out", "{out}/annotated.mp4"],
        "swap": [
            "swap",
            "--checkpoint",
            str(segmenter),
            "--source",
            str(face),
            "--target",
            str(sample_video),
            "--parts",
            "2",
            "--size",
            "128",
            "--device",
            "cpu",
            "--out",
            "{out}/swap.mp4",
        ],  # fmt: skip
        "evaluate": ["evaluate", "--checkpoint", str(MESONET), "--dataset", "single", "--root", str(sample_video)]
        + ["--split", "val", "--clips", "2", "--frames", "2", "--out", "{out}"],
    }
    for name, argv in cases.items():
        out = tmp_path / f"out_{name}"
        out.mkdir()
        args = [a.format(out=out) for a in argv]
        limit = "2000" if name == "evaluate" else "20000"  # a file size limit: the first file past it fails
        proc = subprocess.run([sys.executable, "-c", LIMITED, limit, *args], capture_output=True, text=True,
                              cwd=ROOT)  # fmt: skip
        lines = [e for e in proc.stderr.splitlines() if e.startswith("forgelab ") or "Traceback" in e]
        assert proc.returncode == 1, (name, proc.stderr[-500:])
        assert len(lines) == 1 and "cannot write" in lines[0] and str(out) in lines[0], (name, lines)
        assert list(out.iterdir()) == [], (name, list(out.iterdir()))
