"""Celeb-DF v2: ``Celeb-real/``, ``YouTube-real/``, ``Celeb-synthesis/`` and the official test list."""

from __future__ import annotations

import random
import re
from pathlib import Path

from common.datasets.records import DatasetIndex, VideoRecord, check_splits, group_split, require_dir
from common.errors import DatasetError

FOLDERS = ("Celeb-real", "YouTube-real", "Celeb-synthesis")
TEST_LIST = "List_of_testing_videos.txt"
_REAL = re.compile(r"^(id\d+)_\d+$")
_FAKE = re.compile(r"^(id\d+)_(id\d+)_\d+$")


def identities(folder: str, stem: str) -> tuple[str, ...]:
    """Identities shown in a Celeb-DF video: ``(target, source)`` for fakes, one id for real videos."""
    if folder == "YouTube-real":
        return (f"youtube_{stem}",)
    m = _FAKE.match(stem) if folder == "Celeb-synthesis" else _REAL.match(stem)
    if m is None:
        raise DatasetError(
            f"{folder}/{stem}.mp4", "file name does not follow Celeb-DF naming (idX_NNNN / idX_idY_NNNN)"
        )
    return tuple(m.groups())


class CelebDFIndex(DatasetIndex):
    """Celeb-DF v2 read in place.

    The official ``List_of_testing_videos.txt`` (``"<1|0> folder/file.mp4"``, 1 = real) is the test
    split. Validation is carved from the remaining videos by identity, with both classes: a group of
    celebrities that were often swapped *with each other* (:func:`val_identities`) gives its real videos
    and the fakes among them; a fake whose two identities fall on different sides is left out
    (``split="unassigned"``), so no face is seen in both train and validation. YouTube-real videos are
    split by a seeded share. Test videos are never used for train or validation.

    Args:
        root: the folder holding the three video folders and the test list.
        val_fraction: share of identities for validation.
        seed: split seed.
    """

    def __init__(self, root: str, val_fraction: float = 0.1, seed: int = 0) -> None:
        self.root = Path(root)
        self.val_fraction = val_fraction
        self.seed = seed

    def _test_list(self) -> dict[str, int]:
        path = self.root / TEST_LIST
        if not path.is_file():
            raise DatasetError(path, "official test list is missing (it ships with Celeb-DF v2)")
        out: dict[str, int] = {}
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0] not in ("0", "1") or parts[1].split("/")[0] not in FOLDERS:
                raise DatasetError(f"{path}:{n}", f"expected '<1|0> <folder>/<file>.mp4', got {line.strip()!r}")
            out[parts[1]] = 1 - int(parts[0])  # the list says 1 = real; we use fake = 1
        return out

    def records(self) -> list[VideoRecord]:
        require_dir(self.root, "Celeb-DF root")
        missing = [f for f in FOLDERS if not (self.root / f).is_dir()]
        if missing:
            raise DatasetError(self.root, f"not a Celeb-DF v2 root: missing {', '.join(missing)}")
        test = self._test_list()
        videos = []
        for folder in FOLDERS:
            for path in sorted((self.root / folder).glob("*.mp4")):
                rel = f"{folder}/{path.name}"
                ids = identities(folder, path.stem)
                label = 1 if folder == "Celeb-synthesis" else 0
                if rel in test and test[rel] != label:
                    raise DatasetError(self.root / TEST_LIST, f"{rel} is listed with the wrong label")
                videos.append((rel, path, label, ids))
        absent = sorted(set(test) - {v[0] for v in videos})
        if absent:
            raise DatasetError(self.root, f"{len(absent)} videos of the test list are missing, e.g. {absent[0]}")
        pool = [ids for rel, _, _, ids in videos if rel not in test]
        youtube = [ids[0] for ids in pool if ids[0].startswith("youtube_")]
        side = group_split(youtube, self.val_fraction, 0.0, self.seed)
        celebs = [ids for ids in pool if not ids[0].startswith("youtube_")]
        chosen = val_identities(celebs, round(self.val_fraction * len(celebs)), self.seed)
        side.update({i: "val" if i in chosen else "train" for ids in celebs for i in ids})
        recs = []
        for rel, path, label, ids in videos:
            if rel in test:
                split = "test"
            else:
                sides = {side[i] for i in ids}
                split = sides.pop() if len(sides) == 1 else "unassigned"
            extra = {"source_identity": ids[1]} if len(ids) > 1 else {}
            method = "Celeb-synthesis" if label else ""
            recs.append(VideoRecord(rel[:-4], str(path), label, split, ids[0], method, extra=extra))
        _check_identities(recs, self.root)
        return check_splits(recs, self.root, disjoint=("train", "val"))


def val_identities(videos: list[tuple[str, ...]], target: int, seed: int) -> set[str]:
    """Celebrities for validation: grown from a seeded start, each step adding the identity that cuts the fewest
    new fakes in two (``degree - 2 * fakes shared with those already chosen``), until their videos (real ones,
    and fakes between two chosen identities) reach ``target``. A dense group keeps validation fakes and leaves
    few fakes straddling the two sides (those are left out: no face may be seen in both).

    Args:
        videos: the identities of each non-test Celeb-DF video (one for real videos, two for fakes).
        target: wanted number of validation videos.
        seed: the start and tie-breaking seed.
    """
    names = sorted({i for ids in videos for i in ids})
    if target <= 0 or len(names) < 2:
        return set()
    rank = {n: k for k, n in enumerate(random.Random(seed).sample(names, len(names)))}
    chosen: set[str] = set()

    def size(group: set[str]) -> int:
        return sum(all(i in group for i in ids) for ids in videos)

    pairs = [ids for ids in videos if len(ids) == 2 and ids[0] != ids[1]]
    degree = {n: 0 for n in names}
    for a, b in pairs:
        degree[a] += 1
        degree[b] += 1

    def cut_increase(name: str) -> int:
        inside = sum(1 for a, b in pairs if (a == name and b in chosen) or (b == name and a in chosen))
        return degree[name] - 2 * inside

    while size(chosen) < target and len(chosen) < len(names) - 1:
        rest = [n for n in names if n not in chosen]
        chosen.add(min(rest, key=lambda n: (cut_increase(n), rank[n])) if chosen else min(rest, key=rank.__getitem__))
    return chosen


def _check_identities(recs: list[VideoRecord], where: Path) -> None:
    shown: dict[str, set[str]] = {"train": set(), "val": set()}
    for r in recs:
        if r.split in shown:
            shown[r.split].update({r.group, *r.extra.values()})
    leak = shown["train"] & shown["val"]
    if leak:
        raise DatasetError(where, f"identity {sorted(leak)[0]} in both train and val")
