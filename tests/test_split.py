import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vo2spike.data.read import DataError
from vo2spike.data.split import split_by_person, split_masks


@given(st.lists(st.integers(0, 60), min_size=3, max_size=400), st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_splits_are_person_disjoint_and_complete(persons, seed):
    persons = np.array(persons)
    if len(set(persons)) < 3:
        return
    split = split_by_person(persons, seed)
    sets = [set(split[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set.union(*sets) == {str(p) for p in persons}
    masks = split_masks(persons, split)
    assert np.all(masks["train"].astype(int) + masks["val"] + masks["test"] == 1)
    assert all(len(s) > 0 for s in sets)


def test_split_is_seeded():
    persons = np.repeat(np.arange(100), 3)
    assert split_by_person(persons, 7) == split_by_person(persons, 7)
    assert split_by_person(persons, 7) != split_by_person(persons, 8)


def test_fewer_than_three_people_is_a_data_error():
    with pytest.raises(DataError, match=r"1 person\(s\) with usable windows found \(P0\); .* "
                       r"needs at least 3 people"):
        split_by_person(np.array(["P0", "P0"]), seed=0)
    with pytest.raises(DataError, match=r"^data: 2 person"):
        split_by_person(np.array(["a", "b"]), seed=0, where="data")
