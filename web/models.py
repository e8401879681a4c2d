"""What ``forgelab serve`` loads once at start-up: the detectors (given files, or every detector it can find: the
newest trained sample runs and MesoNet's published Deepfake weights) and the best part-swap model available."""

from __future__ import annotations

from pathlib import Path

from common.errors import ForgelabError
from common.weights import newest_checkpoint
from detection.loading import load_detector
from detection.predict import extractor_for
from web.app import Models
from web.work import ServedDetector

RUNS = Path("outputs/runs")
TRAINED_RUNS = ("detector_sample", "detector_attention_sample", "detector_multicue_sample")
PUBLISHED = (Path("pretrained/mesonet/MesoInception_DF.h5"), Path("pretrained/mesonet/Meso4_DF.h5"))


def default_checkpoints(runs: Path = RUNS) -> list[Path]:
    """The newest trained run (of the sample experiments) first, then MesoNet's published Deepfake weights."""
    found = [c for c in (newest_checkpoint(runs / name) for name in TRAINED_RUNS) if c is not None]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:1] + [p for p in PUBLISHED if p.is_file()]


def load_models(checkpoints: list[Path] | None = None, device: str = "auto", segmenter: Path | None = None,
                swap: bool = True) -> Models:  # fmt: skip
    """Load the detectors (``checkpoints`` or :func:`default_checkpoints`) and, with ``swap``, the part-swap model
    (``segmenter`` or the best available: a published checkpoint in ``pretrained/``, else the sample segmenter run;
    none found -> the swap tab says so)."""
    paths = list(checkpoints or default_checkpoints())
    if not paths:
        raise ForgelabError("no detector to serve: train one (make train-detector) or pass --checkpoint FILE")
    served = []
    for i, path in enumerate(paths):
        loaded = load_detector(path, device)
        served.append(ServedDetector(f"d{i}", loaded, extractor_for(loaded)))
    models = Models(served)
    if swap:
        load_swap_model(models, segmenter)
    return models


def load_swap_model(models: Models, checkpoint: Path | None) -> None:
    """The part-swap model and its segment sheet (PNG bytes) on scikit-image's astronaut, or a note saying why there
    is none."""
    import io

    from skimage.data import astronaut

    from generation.demo import choose_segmenter
    from generation.swap import face_segment_sheet, load_segmenter

    try:
        path, _, which = choose_segmenter(checkpoint)
        model = load_segmenter(path, device="auto")
    except ForgelabError as exc:
        models.notes.append(f"part swapping is off: {str(exc).splitlines()[0]}")
        return
    buf = io.BytesIO()
    face_segment_sheet(model, astronaut(), "astronaut").save(buf, format="PNG")
    models.segmenter, models.segments_png = model, buf.getvalue()
    models.segmenter_source = f"{which} ({Path(path).name})"
