"""The ``LOADERS`` registry: every dataset kind has a loader, an unknown kind is a one-line error."""

from __future__ import annotations

import pytest

from duetfair.data import LOADERS, build_datasets, loader
from duetfair.errors import DuetfairError
from duetfair.options import DatasetKind, choices


def test_every_kind_has_a_loader() -> None:
    assert list(LOADERS) == choices(DatasetKind)
    for kind in LOADERS:
        assert callable(loader(kind)) and loader(kind).__name__ == f"{kind}_datasets"
    assert loader(DatasetKind.HAM10000) is loader("ham10000")


def test_unknown_kind_is_one_line_listing_the_kinds() -> None:
    for call in (lambda: loader("brats"), lambda: build_datasets("brats", root=".")):
        with pytest.raises(DuetfairError) as err:
            call()
        msg = str(err.value)
        assert "'brats'" in msg and "\n" not in msg
        assert all(kind in msg for kind in LOADERS), msg
    with pytest.raises(DuetfairError, match="mamamia"):  # never falls through to the MAMA-MIA loader
        loader("mama")


def test_build_datasets_dispatches_by_kind() -> None:
    ds = build_datasets("synthetic", task="fundus2d", n_train=4, n_val=2, n_test=2, image_size=16, seed=0)
    assert set(ds) >= {"train", "val", "test"} and len(ds["train"]) == 4
