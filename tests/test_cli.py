"""The ``forgelab`` command: the faces demo and one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from common.commands import main as cli_main


def test_faces_demo_writes_sheet_and_summary(face_clip: Path, tmp_path: Path) -> None:
    assert cli_main(["faces", str(face_clip), "--out", str(tmp_path), "--crop-size", "48"]) == 0
    summary = json.loads((tmp_path / "face12_faces.json").read_text())
    assert summary["frames_processed"] == 12 and summary["face_rate"] >= 0.95
    assert summary["box_jitter_smoothed_px"] <= summary["box_jitter_raw_px"]
    sheet = Image.open(tmp_path / "face12_faces.png")
    assert sheet.size == (12 * 96, 96 + 14)


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda p: p.write_text("hello"), 1, "not a readable video"),
        (lambda p: p.write_bytes(b""), 1, "empty"),
        (lambda p: None, 1, "does not exist"),
    ],
)
def test_faces_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, code: int, message: str) -> None:
    path = tmp_path / "x.mp4"
    make(path)
    assert cli_main(["faces", str(path), "--out", str(tmp_path / "o")]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(path) in err[0]
    assert not (tmp_path / "o" / "x_faces.json").exists()


def test_no_face_exit_code_2(noise_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["faces", str(noise_clip), "--out", str(tmp_path)]) == 2
    assert "no face found" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_console_script_help() -> None:
    exe = Path(sys.executable).parent / "forgelab"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("preprocess", "faces", "bench", "fit"):
        assert command in out


def test_newest_checkpoint(tmp_path: Path) -> None:
    import os

    from common.weights import newest_checkpoint

    assert newest_checkpoint(tmp_path) is None
    old = tmp_path / "version_0" / "checkpoints"
    new = tmp_path / "version_1" / "checkpoints"
    for folder, names in ((old, ["best.ckpt", "last.ckpt"]), (new, ["epoch=3.ckpt", "last.ckpt"])):
        folder.mkdir(parents=True)
        for n in names:
            (folder / n).write_bytes(b"x")
    os.utime(old, (1, 1))
    assert newest_checkpoint(tmp_path) == new / "epoch=3.ckpt"  # newest run, not its last.ckpt
    (new / "epoch=3.ckpt").unlink()
    assert newest_checkpoint(tmp_path) == new / "last.ckpt"
