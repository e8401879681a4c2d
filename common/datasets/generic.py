"""Layouts every user can make: ``real/`` + ``fake/`` folders, and a CSV manifest."""

from __future__ import annotations

import csv
from pathlib import Path

from common.datasets.records import DatasetIndex, VideoRecord, check_splits, group_split, require_dir
from common.errors import DatasetError
from common.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

LABELS = {"real": 0, "0": 0, "fake": 1, "1": 1}


def find_videos(root: Path) -> list[Path]:
    """Video files under ``root`` (recursive) and frame folders (folders holding images), sorted."""
    out: list[Path] = []
    for p in sorted(root.rglob("*")):
        if (
            p.is_file()
            and p.suffix.lower() in VIDEO_SUFFIXES
            or p.is_dir()
            and any(c.suffix.lower() in IMAGE_SUFFIXES for c in p.iterdir())
        ):
            out.append(p)
    return out


def video_id_of(path: Path, root: Path) -> str:
    """Path of a video relative to ``root`` without its suffix, with ``/`` separators."""
    rel = path.relative_to(root).as_posix()
    suffix = path.suffix if path.suffix.lower() in VIDEO_SUFFIXES else ""
    return rel[: len(rel) - len(suffix)] if suffix else rel


def disambiguate(rows: list[tuple[str, Path, int, str]], root: Path) -> list[tuple[str, Path, int, str]]:
    """Rows ``(video id, path, label, group)`` where two videos share an id (``x.mp4`` and ``x.mov``) get
    their full relative path, suffix included, as the id, so neither overwrites the other in a cache."""
    counts: dict[str, int] = {}
    for vid, *_ in rows:
        counts[vid] = counts.get(vid, 0) + 1
    return [(path.relative_to(root).as_posix() if counts[vid] > 1 else vid, path, label, group)
            for vid, path, label, group in rows]  # fmt: skip


class FolderIndex(DatasetIndex):
    """``root/real/**/*.mp4`` and ``root/fake/**/*.mp4`` (any video suffix, or frame folders).

    Videos in the same sub-folder of ``real/``/``fake/`` share a group when ``group_by_folder`` is set
    (put one identity per folder to get identity-disjoint splits); otherwise each file is its own group.

    Args:
        root: the dataset root.
        val_fraction: share of groups for validation.
        test_fraction: share of groups for test.
        seed: split seed.
        group_by_folder: group by the first sub-folder below ``real/`` / ``fake/``.
    """

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 0,
        group_by_folder: bool = False,
    ) -> None:
        self.root = Path(root)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.group_by_folder = group_by_folder

    def records(self) -> list[VideoRecord]:
        require_dir(self.root, "dataset root")
        missing = [d for d in ("real", "fake") if not (self.root / d).is_dir()]
        if missing:
            raise DatasetError(self.root, f"expected folders real/ and fake/, missing {', '.join(missing)}/")
        rows = []
        for name, label in (("real", 0), ("fake", 1)):
            base = self.root / name
            for path in find_videos(base):
                rel = path.relative_to(base)
                group = rel.parts[0] if self.group_by_folder and len(rel.parts) > 1 else video_id_of(path, base)
                rows.append((video_id_of(path, self.root), path, label, group))
        rows = disambiguate(rows, self.root)
        splits = group_split((g for *_, g in rows), self.val_fraction, self.test_fraction, self.seed)
        recs = [VideoRecord(v, str(p), lab, splits[g], g) for v, p, lab, g in rows]
        return check_splits(recs, self.root)


class CsvIndex(DatasetIndex):
    """A CSV manifest with a header ``path,label[,split][,group][,method]``.

    ``label`` is one of real/fake/0/1; relative paths are relative to the CSV's folder. Without a
    ``split`` column the split is drawn by group (or by path when there is no ``group`` column).

    Args:
        path: the CSV file.
        val_fraction: share of groups for validation (when no split column).
        test_fraction: share of groups for test (when no split column).
        seed: split seed.
    """

    def __init__(self, path: str, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> None:
        self.path = Path(path)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed

    def _rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            raise DatasetError(self.path, "manifest file does not exist")
        try:
            with self.path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                header = [h.strip() for h in (reader.fieldnames or [])]
                if "path" not in header or "label" not in header:
                    raise DatasetError(self.path, f"header must contain path and label, found {header}")
                rows = []
                for line, row in enumerate(reader, start=2):
                    row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                    if not row.get("path"):
                        raise DatasetError(f"{self.path}:{line}", "empty path")
                    if row.get("label", "").lower() not in LABELS:
                        raise DatasetError(f"{self.path}:{line}", f"label {row.get('label')!r} is not real/fake/0/1")
                    split = row.get("split", "")
                    if split and split not in ("train", "val", "test"):
                        raise DatasetError(f"{self.path}:{line}", f"split {split!r} is not train/val/test")
                    rows.append(row)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DatasetError(self.path, f"not a readable CSV ({exc})") from None
        return rows

    def records(self) -> list[VideoRecord]:
        rows = self._rows()
        base = self.path.parent
        entries = []
        for row in rows:
            p = Path(row["path"])
            p = p if p.is_absolute() else base / p
            vid = p.relative_to(base).as_posix() if not Path(row["path"]).is_absolute() else p.as_posix().lstrip("/")
            vid = vid.rsplit(".", 1)[0] if p.suffix.lower() in VIDEO_SUFFIXES else vid
            group = row.get("group") or vid
            entries.append((vid, p, LABELS[row["label"].lower()], row.get("split", ""), group, row.get("method", "")))
        missing_split = [e for e in entries if not e[3]]
        drawn = group_split((e[4] for e in missing_split), self.val_fraction, self.test_fraction, self.seed)
        recs = [VideoRecord(v, str(p), lab, s or drawn[g], g, m) for v, p, lab, s, g, m in entries]
        ids = [r.video_id for r in recs]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DatasetError(self.path, f"video {dup!r} is listed twice")
        return check_splits(recs, self.path)
