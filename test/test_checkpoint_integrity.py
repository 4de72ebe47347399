"""Checkpoints that would load as a silently wrong network: corrupt bytes, hostile cards, NaN.

Each refusal names the file and the field or tensor. The property tests flip bytes of real
checkpoint files and feed the card validation arbitrary values: a file either loads exactly
what was saved or is refused with a CheckpointError, never anything else.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bisestdc_core import models
from bisestdc_core.classes import MAX_CLASSES
from bisestdc_core.model_card import MAX_NETWORK_SIDE
from bisestdc_core.models import CheckpointError, build_model, load_checkpoint_model
from bisestdc_core.models.checkpoint import PROJECT_FORMAT, read_file, validate_card

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO = REPO_ROOT / "training/checkpoints/demo/bisestdc_synthetic.pt"


def small_checkpoint() -> dict:
    """A project-format dict with a few tensors: cheap to write, flip and read many times."""
    g = torch.Generator().manual_seed(0)
    return {"format": PROJECT_FORMAT, "model": "stdc1", "num_classes": 19,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "state_dict": {"head.weight": torch.randn(4, 8, generator=g),
                           "head.bias": torch.randn(4, generator=g),
                           "bn.num_batches_tracked": torch.tensor(7)}}


def same_content(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and \
            all(same_content(a[k], b[k]) for k in a)
    return a == b


# ---- integrity ------------------------------------------------------------------------------

@pytest.mark.slow
def test_demo_checkpoint_passes_its_checksums_and_card():
    model, meta = load_checkpoint_model(DEMO)
    assert meta["model"] == "bisestdc" and meta["num_classes"] == 19
    assert list(meta["network_size"]) == [256, 512]


def test_one_flipped_byte_in_the_weights_is_refused(tmp_path, test_checkpoint):
    data = bytearray(test_checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside a tensor record of the stdc1 network
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(data))
    crc = r"flipped\.pt: corrupt checkpoint \(Bad CRC-32 for file '.*/data/\d+'"
    with pytest.raises(CheckpointError, match=crc):
        load_checkpoint_model(path)


def test_truncated_file_is_refused(tmp_path, test_checkpoint):
    path = tmp_path / "truncated.pt"
    path.write_bytes(test_checkpoint.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: corrupt checkpoint \("):
        load_checkpoint_model(path)


def test_compressed_records_are_refused_unread(tmp_path):
    """A deflated record could be a zip bomb; torch never writes one."""
    import zipfile

    source = tmp_path / "stored.pt"
    torch.save(small_checkpoint(), source)
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for record in src.infolist():
            dst.writestr(record.filename, src.read(record))
    with pytest.raises(CheckpointError, match=r"deflated\.pt: record '.*' is compressed"):
        read_file(path)


@pytest.mark.slow
def test_legacy_pickle_checkpoints_still_load(tmp_path):
    """Files from torch < 1.6 (the seed's era) have no zip container and no checksums."""
    model = build_model("stdc1", 5)
    path = tmp_path / "legacy.pth"
    torch.save({"state_dict": model.state_dict()}, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:2] != b"PK"
    loaded = build_model("stdc1", 5, weights=path)
    assert torch.equal(loaded.head.conv_out.weight, model.head.conv_out.weight)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@pytest.mark.slow
@given(position=st.floats(0.0, 1.0, exclude_max=True), flip=st.integers(1, 255))
def test_any_flipped_byte_is_refused_or_harmless(position, flip):
    """Property: with one byte changed anywhere, the file loads unchanged or is refused."""
    original = small_checkpoint()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.pt"
        torch.save(original, path)
        data = bytearray(path.read_bytes())
        data[int(position * len(data))] ^= flip
        path.write_bytes(bytes(data))
        try:
            loaded = read_file(path)
        except CheckpointError as error:
            assert str(error).startswith(str(path))
            return
    assert same_content(original, loaded)  # a byte nothing reads (padding, a timestamp)


# ---- the card -------------------------------------------------------------------------------

BAD_CARDS = [
    ("num_classes", 200000), ("num_classes", 0), ("num_classes", -3), ("num_classes", True),
    ("num_classes", "19"), ("num_classes", 19.0), ("network_size", [8192, 16384]),
    ("network_size", [0, 0]), ("network_size", [256]), ("network_size", "256x512"),
    ("network_size", [256.0, 512.0]), ("mean", [math.nan, 0.4, 0.4]), ("mean", [0.5, 0.5]),
    ("std", [0.0, 0.0, 0.0]), ("std", [0.2, -0.2, 0.2]), ("std", [math.inf, 0.2, 0.2]),
    ("std", None), ("model", "resnet50"), ("model", None), ("class_set", 5),
    ("state_dict", [1, 2]),
]


@pytest.mark.parametrize(("field", "value"), BAD_CARDS)
def test_card_fields_are_checked_before_a_network_is_built(tmp_path, monkeypatch, field, value):
    card = small_checkpoint()
    card[field] = value
    path = tmp_path / "card.pt"
    torch.save(card, path)

    def must_not_build(*_args, **_kwargs):
        raise AssertionError("a network was built for a card that fails its bounds")

    monkeypatch.setattr(models, "build_model", must_not_build)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: card field {field!r}"), message
    assert "\n" not in message


def test_card_bounds_are_inclusive(tmp_path):
    card = small_checkpoint()
    for num_classes, size in ((1, [32, 32]), (MAX_CLASSES, [MAX_NETWORK_SIDE, MAX_NETWORK_SIDE])):
        card.update(num_classes=num_classes, network_size=size)
        validate_card(card, tmp_path / "ok.pt", known_models=models.MODEL_REGISTRY)


@pytest.mark.slow
def test_nan_and_inf_weights_are_refused_naming_the_tensor(tmp_path, test_checkpoint):
    ckpt = torch.load(test_checkpoint, weights_only=True)
    name = "backbone.features.3.conv_list.0.conv.weight"
    for bad in (math.nan, math.inf):
        ckpt["state_dict"][name].view(-1)[5] = bad
        path = tmp_path / f"bad_{bad}.pt"
        torch.save(ckpt, path)
        with pytest.raises(CheckpointError, match=rf"bad_{bad}\.pt: 1 tensor\(s\) with NaN or "
                                                   rf"infinite values: {re.escape(name)}"):
            load_checkpoint_model(path)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4), max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(card=st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["stdc1", "bisestdc", "x"]) | _VALUES,
    "num_classes": st.integers(-5, 300) | _VALUES,
    "mean": st.lists(st.floats(), min_size=3, max_size=3) | _VALUES,
    "std": st.lists(st.floats(), min_size=3, max_size=3) | _VALUES,
    "network_size": st.lists(st.integers(-64, 9000), min_size=2, max_size=2) | _VALUES,
    "class_set": _VALUES,
    "state_dict": st.just({}) | _VALUES,
}))
@pytest.mark.slow
def test_any_card_is_accepted_within_bounds_or_refused_by_name(card):
    """Property: hostile values of any type give a CheckpointError naming the field, never a
    TypeError or a crash, and an accepted card lies within the bounds."""
    try:
        validate_card(card, "hostile.pt", known_models=models.MODEL_REGISTRY)
    except CheckpointError as error:
        assert str(error).startswith("hostile.pt: card field '")
        return
    assert 1 <= card["num_classes"] <= MAX_CLASSES
    assert all(s > 0 and math.isfinite(s) for s in card.get("std", [1.0]))
    assert all(32 <= side <= MAX_NETWORK_SIDE for side in card.get("network_size") or [32])
