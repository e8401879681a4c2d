"""What a job does, with the same library calls as ``forgelab detect`` and ``forgelab swap``.

* :func:`detect_job`: the upload checked by decoding it (never by its name), every loaded detector's verdict
  (:func:`detection.predict.analyse`), the combined verdict (:func:`detection.ensemble.combine`), and the files
  the page shows: the annotated H.264 video, the face crops the detectors looked at, the score timeline, a
  Grad-CAM / attention strip when the first detector can draw one, and the full report.
* :func:`swap_job`: face parts of an uploaded image transplanted into an uploaded video, side by side.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError, ForgelabError, VideoReadError
from common.faces import FaceExtractor
from common.video import VideoReader
from detection.loading import LoadedDetector
from detection.predict import VerdictRules, analyse, clip_cams
from web.jobs import Job

MAX_STRIP_FACES = 12


@dataclass
class ServedDetector:
    """A detector loaded once at start-up, with the face extractor cutting its crops. One job at a time uses it
    (:attr:`busy`): Grad-CAM hooks the shared module, and would catch another thread's forward passes."""

    name: str
    detector: LoadedDetector
    extractor: FaceExtractor
    busy: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, **self.detector.describe(), "input_spec": self.detector.spec.to_dict()}


def check_video(path: Path, max_seconds: float) -> dict[str, Any]:
    """Decode the upload's header and first frame; refuse what is not a video or runs longer than ``max_seconds``."""
    try:
        with VideoReader(path) as reader:
            info = reader.info
            first = next(iter(reader.iter_frames([0])), None)
    except ForgelabError:
        raise ConfigError("the upload is not a video this server can decode") from None
    if first is None or info.num_frames < 1:
        raise ConfigError("the upload is a video without a single readable frame")
    seconds = info.num_frames / max(info.fps, 1e-6)
    if seconds > max_seconds:
        raise ConfigError(f"the video lasts {seconds:.0f} s; this server takes at most {max_seconds:.0f} s")
    return {"fps": round(info.fps, 3), "frames": info.num_frames, "size": [info.width, info.height],
            "seconds": round(seconds, 2)}  # fmt: skip


def detect_job(job: Job, video: Path, detectors: list[ServedDetector], rules: VerdictRules,
               max_seconds: float) -> dict[str, Any]:  # fmt: skip
    """Every detector on ``video``; writes ``video`` (annotated), ``faces.png``, ``timeline.png``, ``cam.png`` (when
    the first detector explains itself or takes Grad-CAM) and ``report.json`` into the job folder."""
    from detection.annotate import write_annotated
    from detection.ensemble import combine

    job.report(0.02, "checking the video")
    info = check_video(video, max_seconds)
    analyses, rows = [], []
    n = len(detectors)
    for i, served in enumerate(detectors):
        job.report(0.05 + 0.6 * i / n, f"scoring with {served.detector.module.describe()['name']}")
        with served.busy:
            analysis = analyse(video, served.detector, served.extractor, rules=rules)
        analyses.append(analysis)
        r = analysis.result
        rows.append({"id": served.name, "name": r["detector"]["name"], "verdict": r["verdict"],
                     "verdict_reason": r["verdict_reason"], "p_fake": r["p_fake"], "confidence": r["confidence"],
                     "clips": r["clips"], "faces_found": r["faces_found"], "frames_used": r["frames_used"],
                     "frames_face_interpolated": r["frames_face_interpolated"],
                     "frames_face_filled": r["frames_face_filled"],
                     **{k: r["detector"].get(k, "") for k in ("weights", "source", "licence")}})  # fmt: skip
    combined = combine([a.result for a in analyses], rules)
    primary, first = analyses[0], detectors[0]
    shown = {**primary.result, **{k: combined[k] for k in ("verdict", "verdict_reason", "p_fake", "confidence")}}
    job.report(0.7, "drawing the face crops and the score timeline")
    files = {"faces.png": face_strip(primary.clips, primary.plan, job.folder / "faces.png"),
             "timeline.png": timeline(rows, info["frames"], rules, job.folder / "timeline.png")}  # fmt: skip
    cam_name = None
    try:
        job.report(0.75, "computing where the first detector looked")
        with first.busy:
            cams = clip_cams(first.detector, primary)
        cam_name = "attention maps" if first.detector.module.explains_itself else "Grad-CAM"
        files["cam.png"] = cam_strip(primary, cams, job.folder / "cam.png")
    except ConfigError:  # a detector without a map to draw (fingerprints, cue-only)
        pass
    job.report(0.8, "writing the annotated video")
    files["video"] = write_annotated(video, job.folder / "annotated.mp4", shown, first.extractor)
    report = {"verdict": combined, "detectors": rows, "video_info": info, "upload_name": job.upload_name,
              "faces": {"frames_used": primary.result["frames_used"], "faces_found": primary.result["faces_found"],
                        "frames_face_interpolated": primary.result["frames_face_interpolated"],
                        "frames_face_filled": primary.result["frames_face_filled"]},
              "annotated_with": rows[0]["name"], "cam": cam_name,
              "rules": {"threshold": rules.threshold, "inconclusive_band": rules.band,
                        "min_face_share": rules.min_face_share}}  # fmt: skip
    (job.folder / "report.json").write_text(json.dumps(report, indent=1))
    files["report.json"] = job.folder / "report.json"
    job.files.update(files)
    return report


def face_strip(clips: Any, plan: list[list[int]], out: Path) -> Path:
    """The first face crop of each scored clip (at most :data:`MAX_STRIP_FACES`), labelled with its frame number."""
    from common.facesheet import contact_sheet

    picks = np.unique(np.linspace(0, len(plan) - 1, min(len(plan), MAX_STRIP_FACES)).round().astype(int))
    crops = (clips[picks, 0].permute(0, 2, 3, 1).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    frames = np.array([plan[i][0] for i in picks])
    contact_sheet(crops, frames, np.zeros(len(picks), bool), columns=len(picks), tile=112).save(out)
    return out


def cam_strip(analysis: Any, cams: dict[int, np.ndarray], out: Path) -> Path:
    """The CAM / attention overlay on the first face crop of up to six scored clips."""
    from PIL import Image

    from detection.cam import overlay

    tiles = []
    for c, clip in list(zip(analysis.plan, analysis.clips))[:6]:
        crop = (clip[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        heat = np.asarray(Image.fromarray((cams[c[0]] * 255).astype(np.uint8)).resize(crop.shape[1::-1])) / 255.0
        tiles.append(np.asarray(Image.fromarray(overlay(crop, heat)).resize((160, 160))))
    Image.fromarray(np.concatenate(tiles, 1)).save(out)
    return out


def timeline(rows: list[dict[str, Any]], frames: int, rules: VerdictRules, out: Path) -> Path:
    """p(fake) of every clip of every detector along the video, the threshold and the INCONCLUSIVE band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 2.6), dpi=100)  # not pyplot: its global state is not safe across worker threads
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axhspan(rules.threshold - rules.band, rules.threshold + rules.band, color="#f0c040", alpha=0.25,
               label="inconclusive band")  # fmt: skip
    ax.axhline(rules.threshold, color="grey", linestyle="--", linewidth=1)
    for r in rows:
        mids = [(c["start"] + c["end"]) / 2 for c in r["clips"]]
        ax.plot(mids, [c["p_fake"] for c in r["clips"]], marker="o", markersize=3, label=r["name"][:48])
    ax.set_xlim(0, max(frames - 1, 1))
    ax.set_ylim(0, 1)
    ax.set_xlabel("frame")
    ax.set_ylabel("p(fake)")
    ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(out)
    return out


def swap_job(
    job: Job, image: Path, video: Path, parts: list[int], segmenter: Any, max_seconds: float
) -> dict[str, Any]:
    """Parts of the face in ``image`` transplanted into ``video`` (source | target | result), ``swap.mp4``."""
    from PIL import Image, UnidentifiedImageError

    from generation.swap import swap_video

    job.report(0.02, "checking the image and the video")
    try:
        with Image.open(image) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ConfigError("the face image is not an image this server can decode") from None
    info = check_video(video, max_seconds)
    job.report(0.1, "swapping the parts frame by frame")
    try:
        res = swap_video(segmenter, image, video, job.folder / "swap.mp4", parts, side_by_side=True, progress=False)
    except VideoReadError:
        raise ConfigError("the target video could not be read to the end") from None
    job.files["video"] = Path(res["output"])
    names = [segmenter.part_names.get(p, str(p)) for p in parts]
    return {"parts": parts, "part_names": names, "frames": res["frames"], "fps": res["fps"], "video_info": info,
            "model": {"kind": segmenter.kind, "segments": segmenter.num_segments}}  # fmt: skip
