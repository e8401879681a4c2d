"""Video IO: probe, frame-accurate random access, bounded-memory iteration and H.264 writing.

Reading goes through PyAV (FFmpeg bindings) so that a handful of frames of a long video costs a seek
to the nearest key frame plus a few decoded frames, not a decode of the whole file. Frames come out
upright: a phone video's rotation (its display matrix) is applied, and sizes are display sizes. A "video" may also
be a folder of numbered image files (the VoxCeleb/TaiChi "video-preprocessing" layout). Writing goes
through the ffmpeg binary that ships inside ``imageio-ffmpeg`` (libx264, yuv420p), with the audio track
of another file muxed in on request. Every failure surfaces as :class:`VideoReadError` or
:class:`VideoWriteError` naming the file and the reason.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import imageio_ffmpeg
import numpy as np

from common.errors import ConfigError, VideoReadError, VideoWriteError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
DEFAULT_FOLDER_FPS = 25.0


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video without decoding it all.

    Attributes:
        path: the file or frame folder.
        fps: frames per second (``DEFAULT_FOLDER_FPS`` for frame folders).
        num_frames: number of frames.
        width: frame width in pixels.
        height: frame height in pixels.
        duration: seconds.
        has_audio: whether the container holds an audio stream.
    """

    path: str
    fps: float
    num_frames: int
    width: int
    height: int
    duration: float
    has_audio: bool


def _folder_frames(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _av_error_reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"not a readable video ({text})"


class VideoReader:
    """Random access to the RGB frames of one video file or frame folder.

    Args:
        path: a video file (anything FFmpeg demuxes) or a folder of numbered images.
        seek_gap: when the next wanted frame lies more than this many frames ahead of the last decoded
            one and a key frame lies between them, seek to that key frame instead of decoding through
            the gap. Key frames are found by one demux pass (packets only, no decoding).

    Attributes:
        info: the :class:`VideoInfo`.
        decoded_frames: how many frames this reader has decoded so far (for tests and benchmarks).
    """

    def __init__(self, path: str | Path, seek_gap: int = 16) -> None:
        self.path = Path(path)
        self.seek_gap = seek_gap
        self.decoded_frames = 0
        self._container: av.container.InputContainer | None = None
        self._scan: tuple[list[int], list[int]] | None = None
        self._pts: list[int] | None = None  # every frame's timestamp, in presentation order
        self._iter: Iterator[tuple[int, np.ndarray]] | None = None  # decoder position kept between reads
        self._last = -1
        self._frames: list[Path] | None = None
        if not self.path.exists():
            raise VideoReadError(self.path, "file does not exist")
        if self.path.is_dir():
            self._init_folder()
        else:
            self._init_container()

    # ------------------------------------------------------------------ opening
    def _init_folder(self) -> None:
        try:
            self._frames = _folder_frames(self.path)
        except OSError as exc:
            raise VideoReadError(self.path, f"folder is not readable ({exc.strerror})") from None
        if not self._frames:
            raise VideoReadError(self.path, "frame folder holds no image files")
        first = self._read_image(self._frames[0])
        n = len(self._frames)
        self.info = VideoInfo(
            str(self.path),
            DEFAULT_FOLDER_FPS,
            n,
            first.shape[1],
            first.shape[0],
            n / DEFAULT_FOLDER_FPS,
            False,
        )

    def _init_container(self) -> None:
        if self.path.stat().st_size == 0:
            raise VideoReadError(self.path, "file is empty (0 bytes)")
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoReadError(self.path, _av_error_reason(exc)) from None
        if not self._container.streams.video:
            self.close()
            raise VideoReadError(self.path, "no video stream in the file")
        fmt = self._container.format.name
        if fmt.endswith("_pipe") or fmt == "image2":  # a still image, whatever its name
            self.close()
            raise VideoReadError(self.path, f"this is a still image ({fmt.removesuffix('_pipe')}), not a video")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or float(rate) <= 0:
            self.close()
            raise VideoReadError(self.path, "video stream has no frame rate")
        self._fps = Fraction(rate)
        self._time_base = stream.time_base or Fraction(1, 1000)
        self._start = stream.start_time or 0
        num_frames = self._index_frames(int(stream.frames or 0))
        first = self._first_frame()
        if first is None:
            self.close()
            raise VideoReadError(self.path, "video stream contains no decodable frame")
        duration = num_frames / float(self._fps)
        if self._pts is not None and len(self._pts) > 1:  # from the timestamps (variable frame rates too)
            duration = float((self._pts[-1] - self._pts[0]) * self._time_base) * len(self._pts) / (len(self._pts) - 1)
        self.info = VideoInfo(
            str(self.path),
            float(self._fps),
            num_frames,
            first.shape[1],
            first.shape[0],
            duration,
            bool(self._container.streams.audio),
        )

    def _index_frames(self, header_frames: int) -> int:
        """Demux the stream once (packets only, no decoding): every frame's presentation timestamp and the key
        frames. Frame ``i`` is the ``i``-th timestamp in presentation order, so frame numbers are exact for
        variable frame rates too (phones record those). A file holding clearly fewer frames than its header
        lists is truncated. Returns the number of frames."""
        assert self._container is not None
        pts: list[int] = []
        keys: list[int] = []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size and packet.pts is not None:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
            self._container.seek(0)
        except av.FFmpegError as exc:
            self.close()
            raise VideoReadError(self.path, _av_error_reason(exc)) from None
        if header_frames and len(pts) < header_frames - max(2, header_frames // 50):
            self.close()
            raise VideoReadError(self.path, f"the file is truncated: its header lists {header_frames} frames, only "
                                 f"{len(pts)} are in it")  # fmt: skip
        pts.sort()
        if pts and len(set(pts)) == len(pts):
            self._pts = pts
            self._scan = (list(range(len(pts))), sorted(bisect.bisect_left(pts, k) for k in keys))
            return len(pts)
        # timestamps missing or repeated: frame numbers from timestamp x frame rate
        self._scan = (sorted(self._index_of(p) for p in pts), sorted(self._index_of(k) for k in keys))
        return header_frames or len(pts)

    def _packet_scan(self) -> tuple[list[int], list[int]]:
        """Frame numbers of all packets and of key-frame packets, sorted (from :meth:`_index_frames`)."""
        assert self._scan is not None
        return self._scan

    def frame_times(self) -> np.ndarray | None:
        """float64 ``[num_frames]``: each frame's presentation time in seconds from the first frame (exact for
        variable frame rates), or ``None`` for frame folders and streams without usable timestamps."""
        if self._pts is None:
            return None
        return np.array([float((p - self._pts[0]) * self._time_base) for p in self._pts])

    def _key_before(self, index: int) -> int:
        """The last key frame at or before ``index`` (0 when unknown)."""
        keys = self._packet_scan()[1]
        pos = bisect.bisect_right(keys, index)
        return keys[pos - 1] if pos else 0

    def _first_frame(self) -> np.ndarray | None:
        gen = self._decode_from(0)
        try:
            first = next(gen, (None, None))[1]
            return None if first is None else _rgb(first)
        except VideoReadError:
            return None
        finally:
            gen.close()  # never leave a suspended decoder behind (it would hang a forked worker at GC)

    @staticmethod
    def _read_image(path: Path) -> np.ndarray:
        return read_image(path, "video frame")

    # ------------------------------------------------------------------ decoding
    def _index_of(self, pts: int | None) -> int:
        if pts is None:
            return -1
        if self._pts is not None:
            i = bisect.bisect_left(self._pts, pts)
            if i < len(self._pts) and self._pts[i] == pts:
                return i
        return round(float((pts - self._start) * self._time_base * self._fps))

    def _decode_from(self, index: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Seek to the key frame at or before ``index`` and yield ``(index, decoded frame)`` onwards (frames
        are converted to RGB only when wanted: :func:`_rgb`)."""
        assert self._container is not None
        if self._pts is not None:
            ts = self._pts[min(max(index, 0), len(self._pts) - 1)]
        else:
            ts = self._start + int(index / self._fps / self._time_base)
        try:
            self._container.seek(max(ts, self._start), stream=self._stream, backward=True, any_frame=False)
            for frame in self._container.decode(self._stream):
                self.decoded_frames += 1
                yield self._index_of(frame.pts), frame
        except av.FFmpegError as exc:
            raise VideoReadError(self.path, f"decoding failed near frame {index} ({exc})") from None

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Return the frames at ``indices`` (any order, repeats allowed).

        Args:
            indices: frame numbers in ``[0, num_frames)``.

        Returns:
            uint8 array ``[len(indices), H, W, 3]``, RGB.
        """
        n = self.info.num_frames
        bad = [i for i in indices if not 0 <= int(i) < n]
        if bad:
            raise VideoReadError(self.path, f"frame index {bad[0]} outside [0, {n})")
        if self._frames is not None:
            return np.stack([self._read_image(self._frames[int(i)]) for i in indices])
        found = self._read_sorted(sorted({int(i) for i in indices}))
        out = np.empty((len(indices), self.info.height, self.info.width, 3), np.uint8)
        for k, i in enumerate(indices):
            out[k] = found[int(i)]
        return out

    def _read_sorted(self, wanted: list[int]) -> dict[int, np.ndarray]:
        """Decode the sorted unique frames ``wanted``, continuing from the previous call when possible."""
        want = set(wanted)
        found: dict[int, np.ndarray] = {}
        for target in wanted:
            if target in found:
                continue
            must_seek = self._iter is None or target <= self._last
            if not must_seek and target - self._last > self.seek_gap:
                must_seek = self._key_before(target) > self._last  # seeking helps only past a key frame
            if must_seek:
                self._drop_iter()
                self._iter = self._decode_from(target)
                self._last = -1
                if target > 0:
                    first_idx, first = next(self._iter, (None, None))
                    if first_idx is None or first_idx > target:
                        # the seek landed past the target (odd container): decode from the start
                        self._drop_iter()
                        self._iter = self._decode_from(0)
                    else:
                        self._last = first_idx
                        if first_idx in want:
                            found[first_idx] = _rgb(first)
            if target in found:
                continue
            for idx, frame in self._iter:
                self._last = idx
                if idx in want and idx not in found:
                    found[idx] = _rgb(frame)
                if idx >= target:
                    if target not in found:  # a skipped index takes the next frame
                        found[target] = found[idx] if idx in found else _rgb(frame)
                    break
            else:
                self._drop_iter()
        missing = [i for i in wanted if i not in found]
        if missing:
            raise VideoReadError(
                self.path,
                f"{len(missing)} of {len(wanted)} requested frames could not be decoded "
                f"(first missing: {missing[0]}; the file may be truncated)",
            )
        return found

    def iter_frames(self, indices: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame number, frame [H, W, 3] uint8 RGB)`` one at a time, in order: the lowest-memory way
        through a video (decode -> process -> drop).

        Args:
            indices: the frames to visit (sorted ascending); all frames when ``None``.
        """
        if indices is None and self._frames is None:
            seen = 0
            self._drop_iter()
            self._iter = self._decode_from(0)  # owned by the reader so close() finalises it
            for idx, frame in self._iter:
                idx = max(idx, seen)  # frame numbers from timestamps never repeat or go back
                seen = idx + 1
                yield idx, _rgb(frame)
            self._drop_iter()
            if seen == 0:
                raise VideoReadError(self.path, "video stream contains no decodable frame")
            return
        for i in range(self.info.num_frames) if indices is None else indices:
            yield int(i), self.read([i])[0]

    def iter_chunks(
        self, chunk_size: int = 32, indices: Sequence[int] | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(frame_indices [b], frames [b, H, W, 3] uint8)`` chunks in order, in bounded memory.

        Args:
            chunk_size: frames per chunk.
            indices: the frames to visit (sorted ascending); all frames when ``None``.
        """
        if indices is not None:
            idx = list(indices)
            for s in range(0, len(idx), chunk_size):
                part = idx[s : s + chunk_size]
                yield np.asarray(part, dtype=np.int64), self.read(part)
            return
        buf_i: list[int] = []
        buf_f: list[np.ndarray] = []
        for i, frame in self.iter_frames():
            buf_i.append(i)
            buf_f.append(frame)
            if len(buf_f) == chunk_size:
                yield np.asarray(buf_i, dtype=np.int64), np.stack(buf_f)
                buf_i, buf_f = [], []
        if buf_f:
            yield np.asarray(buf_i, dtype=np.int64), np.stack(buf_f)

    def _drop_iter(self) -> None:
        if self._iter is not None:
            self._iter.close()
            self._iter = None

    def close(self) -> None:
        """Release the decoder and the demuxer."""
        self._drop_iter()
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as RGB uint8 ``[H, W, 3]``, upright: the display matrix phones write (rotation 90,
    180 or 270 degrees counter-clockwise) is applied, as players do."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def read_image(path: str | Path, what: str = "image") -> np.ndarray:
    """An image file as RGB uint8 ``[H, W, 3]``, upright (EXIF orientation applied) whatever its colour mode
    (grey, palette, CMYK, alpha dropped over black, 16-bit scaled to 8), or one :class:`VideoReadError`
    naming the file and the reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise VideoReadError(p, "file does not exist", what)
    try:
        with Image.open(p) as opened:
            img = ImageOps.exif_transpose(opened)
            img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise VideoReadError(p, f"not a readable image ({type(exc).__name__})", what) from None
    if img.mode.startswith("I") or img.mode == "F":  # 16- and 32-bit grey
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(np.round(arr / top * 255), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if img.mode == "P":
        img = img.convert("RGBA")
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def probe(path: str | Path) -> VideoInfo:
    """Return the :class:`VideoInfo` of a video file or frame folder (decodes one frame)."""
    with VideoReader(path) as reader:
        return reader.info


def read_frames(path: str | Path, indices: Sequence[int]) -> np.ndarray:
    """Read the frames at ``indices``: uint8 ``[len(indices), H, W, 3]`` RGB (seeking, not decoding all)."""
    with VideoReader(path) as reader:
        return reader.read(indices)


def sample_indices(num_frames: int, spec: str) -> list[int]:
    """Frame numbers chosen by a sampling spec.

    Args:
        num_frames: frames in the video.
        spec: ``"all"``; ``"even:N"`` (or just ``"N"``) for N frames evenly spaced over the whole video
            (``linspace(0, num_frames - 1, N)``, the field's usual protocol); ``"first:N"`` for the first N;
            ``"windows:K:L"`` for K runs of L consecutive frames spread over the whole video (what
            temporal models need, without caching every frame).

    Returns:
        sorted unique frame numbers.
    """
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(num_frames))
    usage = f"frame spec {spec!r}: expected all, even:N, first:N, windows:K:L or N"
    parts = spec.split(":") if ":" in spec else ["even", spec]
    try:
        numbers = [int(x) for x in parts[1:]]
    except ValueError:
        raise ConfigError(usage) from None
    if not numbers or any(x <= 0 for x in numbers):
        raise ConfigError(f"{usage} (counts must be positive)")
    kind = parts[0]
    if kind == "first" and len(numbers) == 1:
        return list(range(min(numbers[0], num_frames)))
    if kind == "even" and len(numbers) == 1:
        if numbers[0] >= num_frames:
            return list(range(num_frames))
        return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, numbers[0])})
    if kind == "windows" and len(numbers) == 2:
        k, length = numbers
        starts = np.linspace(0, max(num_frames - length, 0), k).round().astype(int)
        return sorted({i for s in starts for i in range(s, min(s + length, num_frames))})
    raise ConfigError(usage)


# ---------------------------------------------------------------------- writing
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

    Returns:
        the written path.
    """
    from common.outputs import atomic_path

    out = Path(path)
    if not out.parent.exists():
        raise VideoWriteError(out, f"folder {out.parent} does not exist")
    stamps = None if times is None or evenly_spaced(times, fps) else np.asarray(times, np.float64)
    with atomic_path(out) as tmp:
        count = _encode(tmp, out, frames, fps, crf, stamps)
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


def _encoder_command(tmp: Path, width: int, height: int, fps: float, crf: int, timed: bool) -> list[str]:
    """ffmpeg reading ``width x height`` frames from stdin: raw RGB at ``fps``, or (``timed``) a NUT stream of
    raw frames that carry their own timestamps, kept as they are. H.264 (yuv420p) for even sizes; VP9 for
    odd ones (H.264 4:2:0 has no odd sizes, VP9 has), so the output keeps the input's exact size."""
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{float(fps):.6f}", "-i", "-"]
    timing = ["-fps_mode", "passthrough", "-enc_time_base", "1:90000", "-video_track_timescale", "90000"]
    source = ["-f", "nut", "-i", "-", *timing] if timed else raw
    if width % 2 or height % 2:
        codec = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
                 "-crf", str(min(63, crf + 12)), "-b:v", "0"]  # fmt: skip
    else:
        codec = ["-c:v", "libx264", "-crf", str(crf), "-preset", "veryfast"]
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-nostdin", *source, *codec,
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(tmp),
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
            times: np.ndarray | None = None) -> int:  # fmt: skip
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
                    cmd = _encoder_command(tmp, *size, fps, crf, times is not None)
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
