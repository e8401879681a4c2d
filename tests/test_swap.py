"""Part swapping on real video: output geometry, untouched pixels, audio, segment sheet, bad inputs.

The model is the parity fixture's (weights produced by the original code, K = 10, 128 px), saved in the
original native format, so these tests also cover loading a published-format file with any widths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.commands import main as cli_main
from common.encode import write_video
from common.video import probe, read_frames
from generation.swap import infer_model_params, load_segmenter, paste_back
from tests.conftest import ffmpeg


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage.data import astronaut as image

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(image()).save(path)
    return path


@pytest.fixture(scope="module")
def target_with_audio(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Path:
    out = tmp_path_factory.mktemp("v") / "carphone_audio.mp4"
    ffmpeg("-i", str(sample_video), "-f", "lavfi", "-i", "sine=frequency=300", "-map", "0:v", "-map", "1:a",
           "-c:v", "copy", "-c:a", "aac", "-shortest", str(out))  # fmt: skip
    assert probe(out).has_audio
    return out


def test_architecture_inferred_from_published_file(native: Path) -> None:
    fx = torch.load(Path(__file__).parent / "data" / "coseg_parity_A.pt", weights_only=True)
    params = infer_model_params(fx["segmentation_module"], fx["reconstruction_module"])
    expected = fx["config"]["model_params"]
    assert params["common_params"] == expected["common_params"]
    for key in ("segmentation_module_params", "reconstruction_module_params"):
        assert params[key] == {**params[key], **expected[key]}
    model = load_segmenter(native, size=128, device="cpu")
    assert model.num_segments == 10 and model.kind == "native"
    assert model.part_names[2] == "lips" and model.parse_parts("lips,eyes") == [2, 7, 9]


def test_swap_on_the_sample_video(native: Path, astronaut: Path, target_with_audio: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "swapped.mp4"
    target = str(target_with_audio)
    code = cli_main(["swap", "--checkpoint", str(native), "--source", str(astronaut), "--target", target,
                     "--parts", "1,2", "--out", str(out), "--size", "128", "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert "parts 1, 2 (lips)" in capsys.readouterr().out
    src, res = probe(target_with_audio), probe(out)
    assert (res.num_frames, res.width, res.height) == (src.num_frames, src.width, src.height)
    assert res.fps == pytest.approx(src.fps, abs=0.01) and res.has_audio
    a, b = read_frames(target_with_audio, [30]), read_frames(out, [30])
    diff = np.abs(a.astype(int) - b.astype(int)).max(axis=-1)[0]
    assert diff.max() > 30  # the face changed
    # far from the face (the car window at the top right), only codec noise
    assert diff[:25, 140:].mean() < 3


def test_paste_back_leaves_outside_pixels_exact() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    crop = np.full((32, 32, 3), 7, np.uint8)
    alpha = np.zeros((32, 32), np.float32)
    alpha[8:24, 8:24] = 1.0
    out = paste_back(frame, np.array([-10, 20, 40, 70]), crop, alpha)  # region leaves the frame
    changed = np.any(out != frame, axis=-1)
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.min() >= 20 and xs.max() < 40
    assert (out[:20] == frame[:20]).all() and (out[:, 40:] == frame[:, 40:]).all()


def test_side_by_side_and_hard_source_mask(native: Path, astronaut: Path, face_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "sbs.mp4"
    assert cli_main(["swap", "--checkpoint", str(native), "--source", str(astronaut), "--target", str(face_clip),
                     "--parts", "2", "--hard", "--use-source-segmentation", "--side-by-side", "--out", str(out),
                     "--size", "128", "--device", "cpu"]) == 0  # fmt: skip
    info = probe(out)
    assert (info.width, info.height, info.num_frames) == (144 + 176 * 2, 144, 12)


def test_segments_sheet(native: Path, astronaut: Path, tmp_path: Path) -> None:
    from generation.swap import segment_sheet

    out = tmp_path / "segments.png"
    assert cli_main(["segments", "--checkpoint", str(native), "--image", str(astronaut), "--out", str(out),
                     "--size", "128", "--device", "cpu"]) == 0  # fmt: skip
    sheet = Image.open(out)
    assert sheet.size[0] > 2 * 256 and sheet.size[1] >= 256
    model = load_segmenter(native, size=128, device="cpu")
    face = np.asarray(Image.open(astronaut).convert("RGB").resize((128, 128)))
    with torch.no_grad():
        seg = model.segmentation(torch.from_numpy(face.copy()).permute(2, 0, 1)[None].float() / 255)
    assert len(torch.unique(seg["segmentation"].argmax(1))) >= 3  # several labelled regions
    assert segment_sheet(model, face).size == sheet.size


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("noface_source", 2, "no face found in"),
        ("noface_target", 2, "no face found in"),
        ("bad_part", 1, "--parts 11 is outside 1..10 (valid: 1..10 or eyes, lips"),
        ("bad_name", 1, "'nose' is not a segment index or known name"),
        ("k_mismatch", 1, "checkpoint has 10 segments, the configuration asks for 5"),
        ("bad_image", 1, "cannot read image"),
        ("bad_video", 1, "cannot read video"),
        ("bad_out", 1, "is a file, not a folder"),
        ("corrupt_ckpt", 1, "not a readable PyTorch checkpoint"),
    ],
)
def test_swap_bad_inputs(case: str, code: int, message: str, native: Path, astronaut: Path, face_clip: Path,
                         noise_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "out.mp4"
    args = {"--checkpoint": str(native), "--source": str(astronaut), "--target": str(face_clip), "--parts": "2",
            "--out": str(out)}  # fmt: skip
    extra: list[str] = []
    if case == "noface_source":
        noise = tmp_path / "noise.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(noise)
        args["--source"] = str(noise)
    elif case == "noface_target":
        args["--target"] = str(noise_clip)
    elif case == "bad_part":
        args["--parts"] = "2,11"
    elif case == "bad_name":
        args["--parts"] = "nose"
    elif case == "k_mismatch":
        extra = ["--num-segments", "5"]
    elif case == "bad_image":
        (tmp_path / "x.png").write_text("not an image")
        args["--source"] = str(tmp_path / "x.png")
    elif case == "bad_video":
        (tmp_path / "x.mp4").write_text("not a video")
        args["--target"] = str(tmp_path / "x.mp4")
    elif case == "bad_out":
        (tmp_path / "a_file").write_text("x")
        out = tmp_path / "a_file" / "out.mp4"
        args["--out"] = str(out)
    elif case == "corrupt_ckpt":
        bad = tmp_path / "bad.pth.tar"
        bad.write_bytes(native.read_bytes()[:4000])
        args["--checkpoint"] = str(bad)
    argv = ["swap", *[x for kv in args.items() for x in kv], "--size", "128", "--device", "cpu", *extra]
    assert cli_main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
    assert not [p for p in tmp_path.rglob("*") if "partial" in p.name]


def test_unwritable_output_leaves_nothing(native: Path, astronaut: Path, face_clip: Path, tmp_path: Path) -> None:
    frames = read_frames(face_clip, [0])
    write_video(tmp_path / "ok.mp4", list(frames), 10)  # the writer itself works here
    locked = tmp_path / "locked.mp4"
    locked.mkdir()  # a folder where the file should go: cannot be replaced by a file
    assert cli_main(["swap", "--checkpoint", str(native), "--source", str(astronaut), "--target", str(face_clip),
                     "--parts", "2", "--out", str(locked), "--size", "128", "--device", "cpu"]) == 1  # fmt: skip
    assert locked.is_dir() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
