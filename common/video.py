"""Video reading: probe, frame-accurate random access and bounded-memory iteration (writing: :mod:`common.encode`).

Reading goes through PyAV (FFmpeg bindings) so that a handful of frames of a long video costs a seek
to the nearest key frame plus a few decoded frames, not a decode of the whole file. Frame numbers follow
the stream's timestamps (exact for variable frame rates). Frames come out upright: a phone video's
rotation (its display matrix) is applied, and sizes are display sizes. A "video" may also be a folder of
numbered image files (the VoxCeleb/TaiChi "video-preprocessing" layout). Every failure surfaces as one
:class:`VideoReadError` naming the file and the reason.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from common.errors import ConfigError, VideoReadError

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
        self._keys: list[int] = []  # frame numbers of the key frames, sorted (from the demux at open)
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
            self._keys = sorted(bisect.bisect_left(pts, k) for k in keys)
            return len(pts)
        # timestamps missing or repeated: frame numbers from timestamp x frame rate
        self._keys = sorted(self._index_of(k) for k in keys)
        return header_frames or len(pts)

    def frame_times(self) -> np.ndarray | None:
        """float64 ``[num_frames]``: each frame's presentation time in seconds from the first frame (exact for
        variable frame rates), or ``None`` for frame folders and streams without usable timestamps."""
        if self._pts is None:
            return None
        return np.array([float((p - self._pts[0]) * self._time_base) for p in self._pts])

    def _key_before(self, index: int) -> int:
        """The last key frame at or before ``index`` (0 when unknown)."""
        pos = bisect.bisect_right(self._keys, index)
        return self._keys[pos - 1] if pos else 0

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
    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy


def probe(path: str | Path) -> VideoInfo:
    """Return the :class:`VideoInfo` of a video file or frame folder (decodes one frame)."""
    with VideoReader(path) as reader:
        return reader.info


def read_frames(path: str | Path, indices: Sequence[int]) -> np.ndarray:
    """Read the frames at ``indices``: uint8 ``[len(indices), H, W, 3]`` RGB (seeking, not decoding all)."""
    with VideoReader(path) as reader:
        return reader.read(indices)


def video_chunks(path: str | Path, chunk_size: int = 32, indices: Sequence[int] | None = None) -> Iterator[np.ndarray]:
    """The frames at ``indices`` (all when ``None``) as uint8 ``[b, H, W, 3]`` RGB chunks, in order, the video
    kept open only while the chunks are consumed (for streaming one video into another)."""
    with VideoReader(path) as reader:
        for _, chunk in reader.iter_chunks(chunk_size, indices):
            yield chunk


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
