"""Person-disjoint train / validation / test splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from vo2spike.data.read import DataError

#: A train / validation / test split needs at least one person in each part.
MIN_PEOPLE = 3


def split_by_person(
    persons: np.ndarray, seed: int, val_frac: float = 0.15, test_frac: float = 0.15, *,
    where: str | Path | None = None,
) -> dict[str, list[str]]:
    """Split the unique person IDs into train / val / test lists (seeded, disjoint).

    Every window and every test of a person lands in exactly one split. Fewer than
    ``MIN_PEOPLE`` people is a DataError (a property of the input data) whose message
    starts with ``where`` (the data directory) when given.
    """
    people = np.array(sorted({str(p) for p in persons}))
    if len(people) < MIN_PEOPLE:
        found = ", ".join(people) or "none"
        prefix = f"{where}: " if where is not None else ""
        raise DataError(
            f"{prefix}{len(people)} person(s) with usable windows found ({found}); a "
            f"person-disjoint train/validation/test split needs at least {MIN_PEOPLE} people "
            "(distinct ID values)"
        )
    n_test = max(1, round(test_frac * len(people)))
    n_val = max(1, round(val_frac * len(people)))
    idx = np.arange(len(people))
    outer = GroupShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
    rest, test = next(outer.split(idx, groups=people))
    inner = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed + 1)
    tr, va = next(inner.split(rest, groups=people[rest]))
    return {
        "train": sorted(people[rest[tr]].tolist()),
        "val": sorted(people[rest[va]].tolist()),
        "test": sorted(people[test].tolist()),
    }


def split_masks(persons: np.ndarray, split: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Boolean masks over windows for each split name."""
    p = np.array([str(x) for x in persons])
    return {name: np.isin(p, ids) for name, ids in split.items()}
