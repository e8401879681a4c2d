"""The part-swap demo: a part of scikit-image's astronaut swapped into the bundled sample video."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.assets import SAMPLE_VIDEO
from common.errors import CheckpointError
from common.weights import available, newest_checkpoint
from generation.swap import load_segmenter, segment_sheet_file, swap_video

SAMPLE_RUNS = Path("outputs/runs/segmenter_sample")


def choose_segmenter(checkpoint: Path | None) -> tuple[Path, str | None, str]:
    """``(checkpoint, part names or None, which)``: the given file, else a published checkpoint in
    ``pretrained/``, else the newest sample segmenter run."""
    if checkpoint is not None:
        return checkpoint, None, "given checkpoint"
    for name, parts in (("coseg_vox10", "lips"), ("coseg_vox5", "hair")):
        found = available(name)
        if found is not None:
            return found, parts, f"published {found.name}"
    found = newest_checkpoint(SAMPLE_RUNS)
    if found is None:
        raise CheckpointError("pretrained/vox-10segments.pth.tar", "not found, and no sample segmenter run: "
                              "run `make train-segmenter` first")  # fmt: skip
    return found, None, "the sample segmenter trained here (64 px, one video): expect a weak swap"


def swap_demo(out: Path, checkpoint: Path | None = None) -> dict[str, Any]:
    """Write ``astronaut.png``, ``astronaut_segments.png``, ``carphone_swap.mp4`` (source | target | result) and
    ``carphone_swap.json`` into ``out``; returns the summary."""
    from PIL import Image
    from skimage.data import astronaut

    ckpt, parts, which = choose_segmenter(checkpoint)
    model = load_segmenter(ckpt, device="auto")
    chosen = model.parse_parts(parts) if parts else [min(2, model.num_segments)]
    out.mkdir(parents=True, exist_ok=True)
    source = out / "astronaut.png"
    Image.fromarray(astronaut()).save(source)
    sheet = segment_sheet_file(model, source, out / "astronaut_segments.png")
    res = swap_video(model, source, SAMPLE_VIDEO, out / "carphone_swap.mp4", chosen, side_by_side=True)
    summary = {**res, "model": which, "segments_sheet": str(sheet)}
    (out / "carphone_swap.json").write_text(json.dumps(summary, indent=2))
    return summary
