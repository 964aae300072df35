"""Closed sets live in ``duetfair.options``; the lists other modules keep are derived from them."""

import pytest

from duetfair import options
from duetfair.errors import DuetfairError
from duetfair.options import ChannelSource, NormalizeMode, OnError, OutputFormat, choices, parse


def test_derived_lists_follow_the_enums() -> None:
    from duetfair.audit.compare import FORMATS
    from duetfair.data.dataset import CHANNEL_SOURCES
    from duetfair.data.transforms import NORMALIZE_CHOICES
    from duetfair.engine.predict import NORMALIZE
    from duetfair.models.registry import MOE_VARIANTS

    assert NORMALIZE == NORMALIZE_CHOICES == tuple(choices(NormalizeMode))
    assert CHANNEL_SOURCES == tuple(choices(ChannelSource))
    assert FORMATS == tuple(choices(OutputFormat))
    assert list(MOE_VARIANTS) == choices(options.MoeKind)
    assert not hasattr(options, "MultiAttribute")


def test_on_error_is_parsed_with_the_allowed_values() -> None:
    from duetfair.data.dataset import drop_bad_cases

    assert parse(OnError, "skip", "on_error") == "skip"
    with pytest.raises(DuetfairError, match=r"on_error: 'ignore' is not one of 'raise', 'skip'"):
        drop_bad_cases(None, on_error="ignore")  # type: ignore[arg-type]
