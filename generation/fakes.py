"""``forgelab make-fakes`` as a library: a detector test set of forgelab's own manipulations of real videos.

From real videos (and, for part swaps, source faces) it writes a folder dataset that ``FolderIndex`` and
``CsvIndex`` read::

    OUT/real/<target identity>/<video>.mp4
    OUT/fake/<target identity>/<video>__<method>__<source>__<parts>__v<variant>.mp4
    OUT/manifest.csv   path,label,split,group,method,parts,source,target,frames

Methods:

* ``part-swap``: parts of a source face swapped into every frame by a motion co-segmentation checkpoint
  (:func:`generation.swap.swap_video`: the face tracked, swapped at the model's size, pasted back through the
  feathered part mask; everything else keeps its pixels).
* ``self-blend``: the video's face blended with a transformed copy of itself (:class:`common.selfblend.SelfBlend`,
  one parameter draw per video, the face side transformed), pasted back the same way.

Real videos are written again with the same encoder and quality as the fakes, so no detector can tell the
classes apart by their compression. Splits are drawn per connected group of identities (a fake joins its
target's and its source's identities), so no identity is ever in two splits. Every file appears only when
complete and is skipped when present, so an interrupted run resumes; videos that fail (no face) are listed
in ``failures.csv`` and left out of the manifest.
"""

from __future__ import annotations

import csv
import io
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import ConfigError, ForgelabError
from common.selfblend import SelfBlend

MANIFEST_COLUMNS = ("path", "label", "split", "group", "method", "parts", "source", "target", "frames")
METHODS = ("part-swap", "self-blend")


@dataclass(frozen=True)
class RealVideo:
    """A real video (or a frame range of one) to manipulate.

    Attributes:
        name: file-name stem of its copies (unique in the set).
        path: the video file.
        identity: whose face it shows (the target identity of its fakes).
        frames: ``(start, stop)`` frame range, ``None`` for the whole video.
    """

    name: str
    path: str
    identity: str
    frames: tuple[int, int] | None = None

    def indices(self, num_frames: int) -> list[int]:
        """Its frame numbers in a video of ``num_frames`` frames."""
        start, stop = self.frames or (0, num_frames)
        return list(range(start, min(stop, num_frames)))


@dataclass(frozen=True)
class SourceFace:
    """A face to swap parts from: an image, or a video's middle frame."""

    name: str
    path: str
    identity: str


@dataclass(frozen=True)
class FakeJob:
    """One output file."""

    real: RealVideo
    method: str  # "real" for the real copy
    source: SourceFace | None = None
    parts: tuple[int, ...] = ()
    variant: int = 0

    @property
    def label(self) -> int:
        return 0 if self.method == "real" else 1

    @property
    def relpath(self) -> str:
        """Where the file goes, relative to the output folder."""
        if self.method == "real":
            return f"real/{self.real.identity}/{self.real.name}.mp4"
        source = self.source.name if self.source else "self"
        parts = "p" + "-".join(str(p) for p in self.parts) if self.parts else "all"
        return f"fake/{self.real.identity}/{self.real.name}__{self.method}__{source}__{parts}__v{self.variant}.mp4"


def segments(real: RealVideo, n: int, num_frames: int) -> list[RealVideo]:
    """``real`` cut into ``n`` consecutive, equal frame ranges (each its own real video)."""
    start, stop = real.frames or (0, num_frames)
    edges = np.linspace(start, stop, n + 1).round().astype(int)
    if n > 1 and np.diff(edges).min() < 2:
        raise ConfigError(f"{real.path}: {stop - start} frames are too few for {n} segments")
    if n == 1:
        return [real]
    return [RealVideo(f"{real.name}_s{i}", real.path, real.identity, (int(a), int(b)))
            for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]  # fmt: skip


def find_sources(paths: Sequence[str | Path]) -> list[SourceFace]:
    """Source faces from image / video files and folders of them (identity: the file's stem, or its first
    folder below a given folder)."""
    from common.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    out: list[SourceFace] = []
    for given in map(Path, paths):
        if not given.exists():
            raise ConfigError(f"no such source face {given}")
        files = [given] if given.is_file() else sorted(p for p in given.rglob("*") if p.is_file())
        for f in files:
            if f.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
                continue
            rel = f.relative_to(given) if given.is_dir() else Path(f.name)
            identity = rel.parts[0] if len(rel.parts) > 1 else f.stem
            out.append(SourceFace(f.stem, str(f), identity))
    if not out:
        raise ConfigError("no source face images or videos found")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two source faces are named {dup!r}: rename one")
    return out


def source_image(source: SourceFace) -> np.ndarray:
    """The source face's image: the file itself, or a video's middle frame (RGB uint8 ``[H, W, 3]``)."""
    from common.video import VIDEO_SUFFIXES, VideoReader, read_image

    if Path(source.path).suffix.lower() not in VIDEO_SUFFIXES:
        return read_image(source.path, "source face")
    with VideoReader(source.path) as reader:
        return reader.read([reader.info.num_frames // 2])[0]


def identity_groups(jobs: Sequence[FakeJob]) -> dict[str, str]:
    """identity -> its group: the smallest identity connected to it through a fake's target and source."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for job in jobs:
        a = find(job.real.identity)
        if job.source is not None:
            b = find(job.source.identity)
            parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in list(parent)}


def plan(reals: Sequence[RealVideo], method: str, sources: Sequence[SourceFace], parts: Sequence[tuple[int, ...]],
         variants: int) -> list[FakeJob]:  # fmt: skip
    """Every output: each real video's copy, then its fakes (part-swap: every source x parts choice;
    self-blend: ``variants`` draws)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "part-swap" and (not sources or not parts):
        raise ConfigError("part-swap needs source faces and parts")
    names = [r.name for r in reals]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two real videos are named {dup!r}")
    jobs = []
    for real in reals:
        jobs.append(FakeJob(real, "real"))
        if method == "self-blend":
            jobs += [FakeJob(real, method, None, (), v) for v in range(variants)]
        else:
            jobs += [FakeJob(real, method, s, tuple(p), v) for s in sources for p in parts for v in range(variants)]
    return jobs


def copy_real(real: RealVideo, dst: Path, crf: int) -> int:
    """The real video (its frame range) written again with the fakes' encoder and quality; returns frames."""
    from common.encode import write_video
    from common.video import probe, video_chunks

    info = probe(real.path)
    indices = real.indices(info.num_frames)
    write_video(dst, (f for chunk in video_chunks(real.path, 32, indices) for f in chunk), info.fps, crf=crf)
    return len(indices)


def self_blend_video(real: RealVideo, dst: Path, blend: SelfBlend, seed: int, crf: int, crop_size: int = 128,
                     margin: float = 1.3) -> int:  # fmt: skip
    """A self-blended fake of a real video: the face tracked, cropped square (``margin``, ``crop_size``),
    blended with a transformed copy of itself (one draw for the whole video; the face is the transformed
    side, so nothing outside the mask changes) and pasted back through the blend mask.

    Raises:
        NoFaceError: no face in the video.

    Returns:
        the number of frames written.
    """
    from common.encode import write_video
    from common.faces import FaceExtractor, crop_square
    from common.frames import to_tensor_clip
    from common.tracking import TRACK_EVERY
    from common.video import VideoReader, video_chunks
    from generation.swap import paste_back

    extractor = FaceExtractor(crop_size=crop_size, margin=margin, device="cpu")
    with VideoReader(real.path) as reader:
        indices = real.indices(reader.info.num_frames)
        fps = reader.info.fps
        track = extractor.extract(reader, indices, crops=False, detect_every=TRACK_EVERY)
    blender = SelfBlend(**{**blend.__dict__, "target_prob": 0.0})  # the face side transformed: a clean paste-back
    p = blender.sample(np.random.default_rng(seed))  # one draw for the whole video
    landmarks, boxes = track.crop_landmarks(crop_size), track.crop_boxes

    def blended() -> Iterator[np.ndarray]:  # in chunks: memory does not grow with the video's length
        pos = 0
        for chunk in video_chunks(real.path, 32, indices):
            regions = boxes[pos : pos + len(chunk)]
            video = to_tensor_clip(np.stack([crop_square(f, r, crop_size) for f, r in zip(chunk, regions)]), None)
            with torch.no_grad():  # SelfBlend's blend, frame by frame: base + mask * (copy - base)
                mask = blender.masks(landmarks[pos : pos + len(chunk)], crop_size, p)
                fake = video + mask * (blender.transformed_copy(video, p) - video)
            fake_u8 = (fake.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
            yield from (paste_back(f, r, c, a) for f, r, c, a in zip(chunk, regions, fake_u8, mask[:, 0].numpy()))
            pos += len(chunk)

    write_video(dst, blended(), fps, crf=crf)
    return len(indices)


@dataclass
class MakeFakes:
    """One make-fakes run.

    Attributes:
        out: the dataset folder.
        method: ``part-swap`` or ``self-blend``.
        model: the co-segmentation model (:class:`generation.swap.Segmenter`; part-swap only).
        split: every video in this split (``train``/``val``/``test``), or ``auto``: drawn per identity group.
        val_fraction: ``auto``: share of identity groups for validation.
        test_fraction: ``auto``: share of identity groups for test.
        seed: split and self-blend seed.
        crf: x264 quality of every written video (real copies included).
        progress: show a progress bar.
    """

    out: Path
    method: str
    model: Any = None
    split: str = "auto"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    crf: int = 18
    progress: bool = True

    def make(self, job: FakeJob, dst: Path, faces: dict[str, np.ndarray]) -> int:
        """Write one job's file; returns its frame count."""
        from generation.swap import swap_video

        if job.method == "real":
            return copy_real(job.real, dst, self.crf)
        if job.method == "self-blend":
            seed = self.seed + job.variant * 1_000_003 + zlib.crc32(job.real.name.encode())
            return self_blend_video(job.real, dst, SelfBlend(), seed, self.crf)
        assert job.source is not None
        if job.source.name not in faces:
            faces[job.source.name] = source_image(job.source)
        res = swap_video(self.model, faces[job.source.name], job.real.path, dst, list(job.parts), progress=False,
                         frames=job.real.frames, crf=self.crf)  # fmt: skip
        return int(res["frames"])

    def run(self, jobs: Sequence[FakeJob]) -> dict[str, Any]:
        """Make every missing file, then write ``manifest.csv`` (and ``failures.csv``); returns a summary."""
        from tqdm import tqdm

        from common.datasets.records import group_split

        self.out.mkdir(parents=True, exist_ok=True)
        faces: dict[str, np.ndarray] = {}
        done, failed, made, skipped, frames, seconds = [], [], 0, 0, 0, 0.0
        for job in tqdm(jobs, desc="make-fakes", unit="video", disable=not self.progress):
            dst = self.out / job.relpath
            if dst.is_file():
                skipped += 1
                done.append(job)
                continue
            if job.method != "real" and not any(d.real == job.real and d.method == "real" for d in done):
                failed.append((job, "its real video failed"))
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            try:
                frames += self.make(job, dst, faces)
            except ForgelabError as exc:
                failed.append((job, str(exc)))
                continue
            seconds += time.perf_counter() - start
            made += 1
            done.append(job)
        groups = identity_groups(done)
        splits = (group_split(set(groups.values()), self.val_fraction, self.test_fraction, self.seed)
                  if self.split == "auto" else {g: self.split for g in groups.values()})  # fmt: skip
        write_manifest(self.out / "manifest.csv", done, groups, splits)
        write_failures(self.out / "failures.csv", failed)
        return {"out": str(self.out), "videos": len(done), "made": made, "skipped": skipped, "failed": len(failed),
                "fake": sum(j.label for j in done), "real": sum(1 - j.label for j in done),
                "frames_made": frames, "seconds": round(seconds, 2),
                "frames_per_s": round(frames / seconds, 2) if seconds else None,
                "splits": {s: sum(splits[groups[j.real.identity]] == s for j in done)
                           for s in ("train", "val", "test")}}  # fmt: skip


def manifest_rows(jobs: Sequence[FakeJob], groups: dict[str, str], splits: dict[str, str]) -> list[dict[str, str]]:
    """The manifest's rows (:data:`MANIFEST_COLUMNS`)."""
    rows = []
    for job in jobs:
        group = groups[job.real.identity]
        frames = "" if job.real.frames is None else f"{job.real.frames[0]}:{job.real.frames[1]}"
        rows.append({"path": job.relpath, "label": "fake" if job.label else "real", "split": splits[group],
                     "group": group, "method": "" if job.method == "real" else job.method,
                     "parts": "-".join(str(p) for p in job.parts), "source": job.source.identity if job.source else "",
                     "target": job.real.identity, "frames": frames})  # fmt: skip
    return rows


def _csv(rows: list[dict[str, str]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_manifest(path: Path, jobs: Sequence[FakeJob], groups: dict[str, str], splits: dict[str, str]) -> None:
    """``manifest.csv``, written atomically."""
    from common.outputs import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(_csv(manifest_rows(jobs, groups, splits), MANIFEST_COLUMNS))


def write_failures(path: Path, failed: Sequence[tuple[FakeJob, str]]) -> None:
    """``failures.csv`` (removed when nothing failed)."""
    from common.outputs import atomic_path

    if not failed:
        path.unlink(missing_ok=True)
        return
    rows = [{"path": job.relpath, "video": job.real.path, "reason": why} for job, why in failed]
    with atomic_path(path) as tmp:
        tmp.write_text(_csv(rows, ("path", "video", "reason")))
