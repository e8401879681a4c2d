"""Video writing: RGB frames -> an mp4 that appears only when complete, with the source's audio.

Frames are piped into the ffmpeg binary that ships inside ``imageio-ffmpeg``: H.264 (libx264, yuv420p) for
even sizes, VP9 for odd ones (H.264 4:2:0 cannot hold them), so outputs keep the input's exact size. When
the source had a variable frame rate, each frame's timestamp is kept (raw frames muxed as NUT with their
timestamps, passed through), so the audio stays in sync. The encoder's exit status and every write error
(a full disk included) become one :class:`~common.errors.VideoWriteError`, and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import imageio_ffmpeg
import numpy as np

from common.errors import VideoWriteError


def _has_audio(path: Path) -> bool:
    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except (av.FFmpegError, OSError):
        return False


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio_from: str | Path | None = None,
    crf: int = 18,
    times: Sequence[float] | np.ndarray | None = None,
    preset: str = "veryfast",
    lossless: bool = False,
) -> Path:
    """Write RGB frames to an mp4 (H.264 or VP9, yuv420p), atomically.

    The file appears at ``path`` only when complete: frames go to a temporary file in the same folder
    that is renamed at the end and removed on any error (:func:`common.outputs.atomic_path`). The
    encoder's exit status and every write error (a full disk included) become one
    :class:`VideoWriteError`. Even sizes are H.264; odd sizes VP9 (in the same mp4), so the output always
    has the frames' exact size.

    Args:
        path: output ``.mp4``.
        frames: iterable of uint8 ``[H, W, 3]`` RGB frames, all the same size (consumed lazily).
        fps: frame rate.
        audio_from: a video whose audio track (if it has one) is muxed into the output (AAC).
        crf: x264 quality (lower is better).
        times: each frame's presentation time in seconds (:meth:`VideoReader.frame_times`); when they are
            not evenly spaced at ``fps`` (a variable-frame-rate source) the output keeps them, so its audio
            stays in sync.
        preset: x264 speed preset (``medium`` is ffmpeg's default, what a re-encoding platform would run).
        lossless: store the RGB frames exactly (x264 in RGB at crf 0, any size; ``crf`` is then unused), for
            intermediate videos that must not add compression of their own (:mod:`common.perturb`).

    Returns:
        the written path.
    """
    from common.outputs import atomic_path

    out = Path(path)
    if not out.parent.exists():
        raise VideoWriteError(out, f"folder {out.parent} does not exist")
    stamps = None if times is None or evenly_spaced(times, fps) else np.asarray(times, np.float64)
    with atomic_path(out) as tmp:
        count = _encode(tmp, out, frames, fps, crf, stamps, preset, lossless)
        if count == 0:
            raise VideoWriteError(out, "no frames to write")
        if audio_from is not None and _has_audio(Path(audio_from)):
            muxed = tmp.with_suffix(".mux.mp4")
            duration = count / float(fps) if stamps is None else float(stamps[count - 1]) + 1 / float(fps)
            try:
                _mux_audio(tmp, Path(audio_from), muxed, duration, out)
                os.replace(muxed, tmp)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    muxed.unlink()
    return out


def evenly_spaced(times: Sequence[float] | np.ndarray, fps: float) -> bool:
    """Whether frame times (seconds) step by ``1 / fps`` within a quarter frame (a constant frame rate)."""
    steps = np.diff(np.asarray(times, np.float64))
    return bool(len(steps) == 0 or np.abs(steps - 1 / float(fps)).max() < 0.25 / float(fps))


def _encoder_command(tmp: Path, width: int, height: int, fps: float, crf: int, timed: bool,
                     preset: str = "veryfast", lossless: bool = False) -> list[str]:  # fmt: skip
    """ffmpeg reading ``width x height`` frames from stdin: raw RGB at ``fps``, or (``timed``) a NUT stream of
    raw frames that carry their own timestamps, kept as they are. H.264 (yuv420p) for even sizes; VP9 for
    odd ones (H.264 4:2:0 has no odd sizes, VP9 has), so the output keeps the input's exact size; ``lossless``:
    x264 in RGB at crf 0 (bit-exact frames, any size)."""
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{float(fps):.6f}", "-i", "-"]
    timing = ["-fps_mode", "passthrough", "-enc_time_base", "1:90000", "-video_track_timescale", "90000"]
    source = ["-f", "nut", "-i", "-", *timing] if timed else raw
    pix_fmt = "yuv420p"
    if lossless:
        codec, pix_fmt = ["-c:v", "libx264rgb", "-crf", "0", "-preset", preset], "rgb24"
    elif width % 2 or height % 2:
        codec = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
                 "-crf", str(min(63, crf + 12)), "-b:v", "0"]  # fmt: skip
    else:
        codec = ["-c:v", "libx264", "-crf", str(crf), "-preset", preset]
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-nostdin", *source, *codec,
        "-pix_fmt", pix_fmt, "-movflags", "+faststart", "-f", "mp4", str(tmp),
    ]  # fmt: skip


class _TimedPipe:
    """Raw RGB frames with their timestamps, muxed as NUT into the encoder's stdin."""

    def __init__(self, stdin: BinaryIO, width: int, height: int, fps: float) -> None:
        self.time_base = Fraction(1, 90000)
        self.container = av.open(stdin, mode="w", format="nut")
        self.stream = self.container.add_stream("rawvideo", rate=Fraction(fps).limit_denominator(100000))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "rgb24"
        self.stream.codec_context.time_base = self.time_base  # not 1 / fps: frames closer than that must stay apart
        self.stream.time_base = self.time_base

    def write(self, frame: np.ndarray, seconds: float) -> None:
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = round(seconds / self.time_base)
        video_frame.time_base = self.time_base
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _encode(tmp: Path, out: Path, frames: Iterable[np.ndarray], fps: float, crf: int,
            times: np.ndarray | None = None, preset: str = "veryfast", lossless: bool = False) -> int:  # fmt: skip
    """Pipe ``frames`` into ffmpeg (with their ``times`` when given); every failure (a write error, a non-zero
    exit) -> :class:`VideoWriteError`."""
    proc: subprocess.Popen[bytes] | None = None
    timed: _TimedPipe | None = None
    size: tuple[int, int] | None = None
    count = 0
    with tempfile.TemporaryFile() as log:
        try:
            for frame in frames:
                frame = np.ascontiguousarray(frame, dtype=np.uint8)
                if proc is None:
                    size = (frame.shape[1], frame.shape[0])
                    cmd = _encoder_command(tmp, *size, fps, crf, times is not None, preset, lossless)
                    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                    if times is not None:
                        assert proc.stdin is not None
                        timed = _TimedPipe(proc.stdin, *size, fps)
                if (frame.shape[1], frame.shape[0]) != size:
                    raise VideoWriteError(out, f"frame {count} has size {frame.shape[1]}x{frame.shape[0]}, not {size}")
                if times is not None and count >= len(times):
                    raise VideoWriteError(out, f"more frames than the {len(times)} timestamps given")
                assert proc.stdin is not None
                try:
                    if timed is not None and times is not None:
                        timed.write(frame, float(times[count]))
                    else:
                        proc.stdin.write(memoryview(frame))
                except (OSError, av.FFmpegError):  # the encoder died (full disk, ...): its own message says why
                    break
                count += 1
        except BaseException:
            if proc is not None:
                proc.kill()
                proc.wait()
            raise
        if proc is None:
            return 0
        with contextlib.suppress(OSError, av.FFmpegError):
            if timed is not None:
                timed.close()
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        code = proc.wait()
        if code != 0:
            log.seek(0)
            lines = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
            reason = lines[-1].strip() if lines else _encoder_exit(code)
            raise VideoWriteError(out, reason[:300])
    return count


def _encoder_exit(code: int) -> str:
    """Why an encoder that printed nothing stopped: its exit status or the signal that killed it."""
    if code >= 0:
        return f"the encoder stopped (exit status {code})"
    name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
    extra = " (the file outgrew the space or file-size limit)" if name == "SIGXFSZ" else ""
    return f"the encoder was killed by {name}{extra}"


def _mux_audio(video: Path, audio_src: Path, out: Path, duration: float, target: Path) -> None:
    """Copy the video stream and add the source's audio, cut to the video's duration (every frame is kept)."""
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-nostdin",
        "-i", str(video), "-i", str(audio_src),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-t", f"{duration:.6f}",
        "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VideoWriteError(target, f"muxing audio from {audio_src} failed: {proc.stderr.strip()[-300:]}")
