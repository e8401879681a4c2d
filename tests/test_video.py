"""Video IO: probing, frame-accurate seeking, bounded iteration, writing (with audio), bad files."""

from __future__ import annotations

from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from common.encode import write_video
from common.errors import ConfigError, VideoReadError, VideoWriteError
from common.video import VideoReader, probe, read_frames, sample_indices
from tests.conftest import ffmpeg, numbered_frames


@pytest.fixture(scope="module")
def long_gop_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 numbered frames, a key frame every 30."""
    path = tmp_path_factory.mktemp("v") / "gop30.mp4"
    frames = numbered_frames(300)
    w = imageio_ffmpeg.write_frames(str(path), (64, 48), fps=30, codec="libx264", macro_block_size=1,
                                    output_params=["-g", "30", "-keyint_min", "30", "-sc_threshold", "0"],
                                    ffmpeg_log_level="error")  # fmt: skip
    w.send(None)
    for f in frames:
        w.send(f)
    w.close()
    return path


def test_probe_sample(sample_video: Path) -> None:
    info = probe(sample_video)
    assert (info.width, info.height, info.num_frames) == (176, 144, 120)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration == pytest.approx(4.004, abs=0.01)
    assert info.has_audio is False


def test_random_access_equals_sequential_decode(long_gop_video: Path) -> None:
    with VideoReader(long_gop_video) as r:
        everything = np.concatenate([f for _, f in r.iter_chunks(64)])
    assert everything.shape == (300, 48, 64, 3)
    wanted = [299, 3, 150, 151, 61, 3]
    got = read_frames(long_gop_video, wanted)
    for k, i in enumerate(wanted):
        assert np.array_equal(got[k], everything[i]), f"frame {i} differs from sequential decode"
        assert abs(int(got[k][5, 5, 0]) - 8 * (i % 32)) <= 4  # it is really frame i


def test_seeking_decodes_only_a_few_frames(long_gop_video: Path) -> None:
    with VideoReader(long_gop_video) as r:
        r.read(sample_indices(300, "even:5"))
        # 5 frames, each at most one GOP (30 frames) after its key frame, plus decoder lookahead
        assert r.decoded_frames < 5 * 30 + 20 < 300


def test_iter_chunks_bounded(sample_video: Path) -> None:
    with VideoReader(sample_video) as r:
        sizes = [len(f) for _, f in r.iter_chunks(32)]
    assert sizes == [32, 32, 32, 24]


def test_sample_indices() -> None:
    assert sample_indices(10, "all") == list(range(10))
    assert sample_indices(100, "even:5") == [0, 25, 50, 74, 99]  # linspace(0, 99, 5) rounded
    assert sample_indices(100, "5") == [0, 25, 50, 74, 99]
    assert sample_indices(100, "first:3") == [0, 1, 2]
    assert sample_indices(4, "even:32") == [0, 1, 2, 3]
    assert sample_indices(100, "windows:3:4") == [0, 1, 2, 3, 48, 49, 50, 51, 96, 97, 98, 99]
    assert sample_indices(5, "windows:2:10") == [0, 1, 2, 3, 4]
    for bad in ("even:x", "middle:3", "0", "windows:3", "first:-1"):
        with pytest.raises(ConfigError):
            sample_indices(10, bad)


@pytest.mark.parametrize(("height", "width", "codec"), [(48, 64, "h264"), (47, 63, "vp9")])
def test_write_roundtrip(tmp_path: Path, height: int, width: int, codec: str) -> None:
    frames = numbered_frames(25, height, width)  # odd sizes: VP9 (H.264 4:2:0 has none), still the exact size
    out = write_video(tmp_path / "out.mp4", list(frames), 12.5)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == codec
        assert s.codec_context.pix_fmt == "yuv420p"
    info = probe(out)
    assert (info.num_frames, info.width, info.height) == (25, width, height)
    assert info.fps == pytest.approx(12.5)
    back = read_frames(out, [0, 24])
    assert np.abs(back.astype(int) - frames[[0, 24]]).mean() < 4
    assert not list(tmp_path.glob(".*partial*"))


def test_write_copies_audio(tmp_path: Path) -> None:
    src = tmp_path / "with_audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(src))  # fmt: skip
    assert probe(src).has_audio
    out = write_video(tmp_path / "o.mp4", list(numbered_frames(25)), 10, audio_from=src)  # 2.5 s of video, 2 s audio
    assert probe(out).has_audio and probe(out).num_frames == 25  # every frame kept
    short = write_video(tmp_path / "short.mp4", list(numbered_frames(12)), 10, audio_from=src)
    assert probe(short).num_frames == 12 and probe(short).has_audio
    silent = write_video(tmp_path / "s.mp4", list(numbered_frames(20)), 10, audio_from=None)
    assert not probe(silent).has_audio


def test_write_errors_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(VideoWriteError, match="does not exist"):
        write_video(tmp_path / "missing" / "o.mp4", list(numbered_frames(2)), 10)
    with pytest.raises(VideoWriteError, match="no frames"):
        write_video(tmp_path / "o.mp4", [], 10)

    def mixed():
        yield np.zeros((48, 64, 3), np.uint8)
        yield np.zeros((32, 32, 3), np.uint8)

    with pytest.raises(VideoWriteError, match="size"):
        write_video(tmp_path / "o.mp4", mixed(), 10)
    assert list(tmp_path.iterdir()) == []


def test_frame_folder(tmp_path: Path) -> None:
    import imageio.v3 as iio

    folder = tmp_path / "id1#yt#0#10.mp4"
    folder.mkdir()
    frames = numbered_frames(5)
    for i, f in enumerate(frames):
        iio.imwrite(folder / f"{i:07d}.png", f)
    info = probe(folder)
    assert (info.num_frames, info.width, info.height) == (5, 64, 48)
    assert np.array_equal(read_frames(folder, [4, 1]), frames[[4, 1]])


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated_tail", "truncated_head", "no_frames",
                                  "audio_only", "empty_folder"])  # fmt: skip
def test_bad_inputs_raise_one_clear_error(tmp_path: Path, sample_video: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.mp4"
    data = sample_video.read_bytes()
    expect = {"missing": "does not exist", "empty": "empty", "text": "not a readable video",
              "truncated_tail": "the file is truncated", "truncated_head": "not a readable video",
              "no_frames": "no video stream", "audio_only": "no video stream",
              "empty_folder": "no image files"}[kind]  # fmt: skip
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "truncated_tail":  # header (moov first) intact, frame data cut
        fast = write_video(tmp_path / "fast.mp4", list(read_frames(sample_video, range(60))), 30)
        path.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    elif kind == "truncated_head":  # the sample keeps its moov at the end: cutting loses it
        path.write_bytes(data[: len(data) // 2])
    elif kind == "no_frames":
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "0", "-c:v", "libx264", str(path))
    elif kind == "audio_only":
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:a", "aac", str(path))
    elif kind == "empty_folder":
        path.mkdir()
    with pytest.raises(VideoReadError, match=expect) as err:
        r = VideoReader(path)
        r.read(list(range(r.info.num_frames)))
    assert str(path) in str(err.value)
