"""FaceForensics++: original and manipulated sequences at one compression, official split JSONs."""

from __future__ import annotations

import json
from pathlib import Path

from common.datasets.records import DatasetIndex, VideoRecord, check_splits, group_split, require_dir
from common.errors import DatasetError

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
COMPRESSIONS = ("raw", "c0", "c23", "c40")


class FaceForensicsIndex(DatasetIndex):
    """FaceForensics++ read in place.

    Real videos: ``original_sequences/youtube/<comp>/videos/NNN.mp4``; fakes:
    ``manipulated_sequences/<method>/<comp>/videos/<target>_<source>.mp4``. ``raw`` and ``c0`` are the
    same (lossless) and either folder name is accepted. The official ``train.json`` / ``val.json`` /
    ``test.json`` list pairs ``["071", "054"]``: real videos 071 and 054 and fakes ``071_054`` and
    ``054_071`` of every method belong to that split. Videos of no listed pair (e.g. DeepFakeDetection,
    whose actors are not in the official splits) get ``split="unassigned"``. Without split files the
    pairs are split by a seeded draw (72/14/14 %, the official proportions).

    Args:
        root: the FaceForensics++ root.
        compression: ``raw``/``c0``, ``c23`` or ``c40``.
        methods: manipulation methods to include.
        splits_dir: folder holding the official split JSONs (default: ``root/splits``, then
            ``root/dataset/splits``).
        seed: split seed used only when no split files exist.
    """

    def __init__(
        self,
        root: str,
        compression: str = "c23",
        methods: list[str] | None = None,
        splits_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise DatasetError(root, f"compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")
        self.root = Path(root)
        self.compression = compression
        self.methods = (
            list(methods) if methods is not None else ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
        )
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise DatasetError(root, f"unknown method {bad[0]!r}; known: {', '.join(METHODS)}")
        self.splits_dir = Path(splits_dir) if splits_dir else None
        self.seed = seed

    def _comp_dir(self, base: Path) -> Path:
        names = ("raw", "c0") if self.compression in ("raw", "c0") else (self.compression,)
        for name in names:
            if (base / name / "videos").is_dir():
                return base / name / "videos"
        raise DatasetError(base, f"no {'/'.join(names)}/videos folder (compression {self.compression})")

    def _split_files(self) -> dict[str, str] | None:
        dirs = [self.splits_dir] if self.splits_dir else [self.root / "splits", self.root / "dataset" / "splits"]
        for d in dirs:
            if d is not None and all((d / f"{s}.json").is_file() for s in ("train", "val", "test")):
                return self._read_splits(d)
        if self.splits_dir is not None:
            raise DatasetError(self.splits_dir, "expected train.json, val.json and test.json")
        return None

    @staticmethod
    def _read_splits(folder: Path) -> dict[str, str]:
        pair_split: dict[str, str] = {}
        for split in ("train", "val", "test"):
            path = folder / f"{split}.json"
            try:
                pairs = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DatasetError(path, f"not valid JSON ({exc})") from None
            ok = isinstance(pairs, list) and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
            )
            if not ok:
                raise DatasetError(path, 'expected a JSON list of pairs like ["071", "054"]')
            for a, b in pairs:
                for vid in (a, b):
                    if pair_split.setdefault(vid, split) != split:
                        raise DatasetError(path, f"video {vid} is in both {pair_split[vid]} and {split}")
        return pair_split

    def records(self) -> list[VideoRecord]:
        require_dir(self.root, "FaceForensics++ root")
        orig = self.root / "original_sequences" / "youtube"
        if not orig.is_dir() or not (self.root / "manipulated_sequences").is_dir():
            raise DatasetError(
                self.root,
                "not a FaceForensics++ root: expected original_sequences/youtube/ and manipulated_sequences/",
            )
        video_split = self._split_files()
        rows: list[tuple[str, Path, int, tuple[str, str], str]] = []
        for path in sorted(self._comp_dir(orig).glob("*.mp4")):
            rows.append((f"original/{path.stem}", path, 0, (path.stem, path.stem), ""))
        for method in self.methods:
            base = self.root / "manipulated_sequences" / method
            if not base.is_dir():
                raise DatasetError(base, f"method folder for {method} is missing")
            for path in sorted(self._comp_dir(base).glob("*.mp4")):
                target, _, source = path.stem.split("__")[0].partition("_")
                rows.append((f"{method}/{path.stem}", path, 1, (target, source or target), method))
        if video_split is None:
            pair_of = {}
            for *_, (t, s), method in rows:
                if method:
                    pair_of[t] = pair_of[s] = "_".join(sorted((t, s)))
            groups = {vid: pair_of.get(vid, vid) for _, _, _, (vid, _), _ in rows}
            drawn = group_split(groups.values(), 0.14, 0.14, self.seed)
            video_split = {vid: drawn[g] for vid, g in groups.items()}
        recs = []
        for vid, path, label, (t, s), method in rows:
            sides = {video_split.get(t, "unassigned"), video_split.get(s, "unassigned")}
            split = sides.pop() if len(sides) == 1 else "unassigned"
            group = "_".join(sorted((t, s))) if method else t
            recs.append(VideoRecord(vid, str(path), label, split, group, method))
        _check_pairs(recs, self.root)
        return check_splits(recs, self.root, disjoint=())


def _check_pairs(recs: list[VideoRecord], where: Path) -> None:
    """No original video may be seen in two splits, as itself or as a fake's target or source."""
    seen: dict[str, str] = {}
    for r in recs:
        if r.split == "unassigned":
            continue
        for vid in r.group.split("_"):
            if seen.setdefault(vid, r.split) != r.split:
                raise DatasetError(where, f"original video {vid} appears in both {seen[vid]} and {r.split}")
