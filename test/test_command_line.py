"""What the command lines share (bisestdc_core.cli.boundary)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bisestdc_core.cli.boundary import tool_options
from bisestdc_ros.cli import make_bag


def test_tool_options_are_the_parsers_defaults_with_the_values_given():
    """How the demo runs other tools' functions: their own defaults, names checked."""
    parser = make_bag.build_parser()
    args = tool_options(parser, out=Path("bag"), frames=4)
    assert vars(args) == vars(parser.parse_args(["--out", "bag", "--frames", "4"]))
    with pytest.raises(TypeError, match=r"unknown options \['frame'\], missing options \[\]"):
        tool_options(parser, out=Path("bag"), frame=4)
    with pytest.raises(TypeError, match=r"missing options \['out'\]"):
        tool_options(parser, frames=4)
