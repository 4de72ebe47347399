"""Checkpoint loading: project files, the seed's files, ImageNet backbones, and bad files."""

import re
from pathlib import Path

import pytest
import torch

from bisestdc_core.models import (
    MODEL_REGISTRY,
    CheckpointError,
    build_model,
    load_checkpoint_model,
    save_checkpoint,
)
from bisestdc_core.models.checkpoint import atomic_save

SEED_KEYS = Path(__file__).resolve().parents[2] / "shared/reference/seed_state_dict_keys.txt"
SEED_SECTIONS = {"bisestdc": "bisestdc_seg_cityscapes19", "stdc1": "stdc1_seg_cityscapes19",
                 "stdc2": "stdc2_seg_cityscapes19"}
STAGE_ENDS = {"bisestdc": (1, 2, 4, 6, 8), "stdc1": (1, 2, 4, 6, 8), "stdc2": (1, 2, 6, 11, 14)}

# Our names -> the seed's (the inverse of the loader's mapping).
_TO_SEED = [
    (r"^backbone\.detail_branch\.", "cp.backbone.featuresSP."),
    (r"^backbone\.detail_fusion\.", "cp.backbone.ffm."),
    (r"^backbone\.features\.", "cp.backbone.features."),
    (r"^context\.", "cp."),
    (r"^head\.", "conv_out."),
    (r"^detail_head\.", "conv_out_sp8."),
]
_AUX_TO_SEED = {
    "bisestdc": {"aux_head4": "conv_out8", "aux_head8": "conv_out16", "aux_head16": "conv_out32"},
    "stdc": {"aux_head8": "conv_out16", "aux_head16": "conv_out32"},
}


def to_seed_state_dict(model, name: str) -> dict:
    """Write a network's tensors the way the seed's code names them, aliases and extras too."""
    aux = _AUX_TO_SEED["bisestdc" if name == "bisestdc" else "stdc"]
    state = {}
    for key, value in model.state_dict().items():
        new = key
        for pattern, repl in _TO_SEED:
            new, n = re.subn(pattern, repl, key)
            if n:
                break
        head = key.split(".")[0]
        if head in aux:
            new = aux[head] + key[len(head):]
        state[new] = value.clone()
    # Aliased stage views share the feature tensors under a second name.
    ends = STAGE_ENDS[name]
    for key, value in list(state.items()):
        m = re.match(r"cp\.backbone\.features\.(\d+)\.(.*)", key)
        if m:
            idx = int(m.group(1))
            stride = [2, 4, 8, 16, 32][next(i for i, e in enumerate(ends) if idx < e)]
            state[f"cp.backbone.x{stride}.0.{idx}.{m.group(2)}"] = value
        m = re.match(r"cp\.backbone\.featuresSP\.(\d+)\.(.*)", key)
        if m:
            idx = int(m.group(1))
            state[f"cp.backbone.SPx{2 ** (idx + 1)}.0.{idx}.{m.group(2)}"] = value
    # ImageNet classifier and untrained detail heads: present in the files, unused.
    state["cp.backbone.fc.weight"] = torch.randn(1024, 1024)
    state["cp.backbone.linear.weight"] = torch.randn(1000, 1024)
    state["cp.backbone.conv_last.conv.weight"] = torch.randn(1024, 1024, 1, 1)
    for ch, s in ((32, 2), (64, 4), (512, 16)):
        state[f"conv_out_sp{s}.conv.conv.weight"] = torch.randn(64, ch, 3, 3)
        state[f"conv_out_sp{s}.conv_out.weight"] = torch.randn(1, 64, 1, 1)
    # InPlaceABN layers carried no num_batches_tracked.
    return {k: v for k, v in state.items()
            if not (k.endswith("num_batches_tracked") and ("arm" in k or "conv_head" in k))}


def randomised(model):
    """Non-trivial BN statistics so that a wrong mapping changes the logits."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def seed_reference():
    """name -> (its tensors under the seed's names, an input, the logits of the randomised
    network on it), made once per network for the module: the three wrappings of a network's
    file are written from the same network and compared on the same input (only loading the
    file and running what was loaded, what each case checks, happen per case)."""
    built: dict[str, tuple] = {}

    def get(name: str):
        if name not in built:
            ref = randomised(build_model(name, 19))
            x = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                built[name] = (to_seed_state_dict(ref, name), x, ref(x))
        return built[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bisestdc", "stdc1", "stdc2"])
@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module"])
def test_seed_checkpoint_gives_the_same_logits(tmp_path, name, wrap, seed_reference):
    state, x, ref_logits = seed_reference(name)
    if wrap == "module":
        state = {f"module.{k}": v for k, v in state.items()}
    obj = {"state_dict": state} if wrap == "state_dict" else state
    path = tmp_path / "seed.pth"
    torch.save(obj, path)
    model = build_model(name, 19, weights=path).eval()
    with torch.no_grad():
        assert (model(x) - ref_logits).abs().max().item() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bisestdc", "stdc1", "stdc2"])
def test_seed_key_list_maps_onto_every_tensor(tmp_path, name):
    """Every name and shape in the seed's published key list loads (when the list is at hand)."""
    if not SEED_KEYS.is_file():
        pytest.skip(f"seed key list not available at {SEED_KEYS}")
    section, entries = None, {}
    for line in SEED_KEYS.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == SEED_SECTIONS[name] and "\t" in line:
            key, shape = line.split("\t")
            dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
            entries[key] = torch.zeros((), dtype=torch.long) if shape == "scalar" else \
                torch.randn(dims)
    torch.save(entries, tmp_path / "seed.pth")
    model = build_model(name, 19, weights=tmp_path / "seed.pth")
    assert torch.equal(model.head.conv_out.weight, entries["conv_out.conv_out.weight"])
    assert torch.equal(model.backbone.features[2].conv_list[1].conv.weight,
                       entries["cp.backbone.features.2.conv_list.1.conv.weight"])
    assert torch.equal(model.context.arm16.conv_atten.weight, entries["cp.arm16.conv_atten.weight"])
    if name == "bisestdc":
        assert torch.equal(model.backbone.detail_fusion.conv1.weight,
                           entries["cp.backbone.ffm.conv1.weight"])
        assert torch.equal(model.aux_head4.conv_out.weight, entries["conv_out8.conv_out.weight"])


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_seed_key_map_names_every_aux_head_of_its_network(name):
    network = MODEL_REGISTRY[name]
    model = network.build(3)
    aux = {key.split(".")[0] for key in model.state_dict() if key.startswith("aux_head")}
    assert sorted(network.seed_keys.aux_heads.values()) == sorted(aux)


@pytest.mark.slow
def test_project_checkpoint_round_trip_fp16(tmp_path):
    ref = randomised(build_model("stdc1", 7))
    save_checkpoint(tmp_path / "demo.pt", ref, "stdc1", "camvid", half=True)
    model, meta = load_checkpoint_model(tmp_path / "demo.pt")
    assert meta["model"] == "stdc1" and meta["num_classes"] == 7 and meta["class_set"] == "camvid"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() < 0.05  # fp16 storage rounding


def test_wrong_class_count_names_file_and_tensor(tmp_path):
    path = tmp_path / "seed19.pth"
    torch.save(to_seed_state_dict(build_model("stdc1", 19), "stdc1"), path)
    msg = r"seed19\.pth.*shape mismatch.*head\.conv_out\.weight"
    with pytest.raises(CheckpointError, match=msg):
        build_model("stdc1", 11, weights=path)


def test_wrong_network_is_refused(tmp_path):
    path = tmp_path / "stdc2.pth"
    torch.save(to_seed_state_dict(build_model("stdc2", 19), "stdc2"), path)
    msg = r"stdc2\.pth.*unexpected tensor.*backbone\.features\.8"
    with pytest.raises(CheckpointError, match=msg):
        build_model("stdc1", 19, weights=path)


def test_missing_tensor_is_refused(tmp_path):
    state = to_seed_state_dict(build_model("bisestdc", 19), "bisestdc")
    del state["cp.arm8.conv_atten.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"partial\.pth.*missing.*context\.arm8\.conv_atten"):
        build_model("bisestdc", 19, weights=tmp_path / "partial.pth")


def test_corrupt_file_names_file(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"broken\.pth: not a readable checkpoint"):
        build_model("stdc1", 19, weights=path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        build_model("stdc1", 19, weights=tmp_path / "absent.pth")


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_never_executes_code(tmp_path):
    marker = tmp_path / "executed"
    payload = _Exploit()
    payload.marker = str(marker)
    torch.save({"state_dict": payload}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth"):
        build_model("stdc1", 19, weights=tmp_path / "evil.pth")
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stdc1", "stdc2", "bisestdc"])
def test_imagenet_backbone_loads_into_semantic_branch(tmp_path, name):
    src = randomised(build_model("stdc2" if name == "stdc2" else "stdc1", 19))
    state = {k.removeprefix("backbone."): v for k, v in src.state_dict().items()
             if k.startswith("backbone.features.")}
    state.update({"fc.weight": torch.randn(1024, 1024), "linear.weight": torch.randn(1000, 1024),
                  "bn.weight": torch.ones(1024),
                  "x2.0.0.conv.weight": state["features.0.conv.weight"]})
    atomic_save({"state_dict": state}, tmp_path / "imagenet.tar")
    model = build_model(name, 19, backbone_weights=tmp_path / "imagenet.tar")
    assert torch.equal(model.backbone.features[3].conv_list[0].conv.weight,
                       src.backbone.features[3].conv_list[0].conv.weight)


def test_imagenet_backbone_of_other_depth_is_refused(tmp_path):
    src = build_model("stdc2", 19)
    state = {k.removeprefix("backbone."): v for k, v in src.state_dict().items()
             if k.startswith("backbone.features.")}
    torch.save({"state_dict": state}, tmp_path / "stdc2_imagenet.tar")
    with pytest.raises(CheckpointError, match="stdc2_imagenet.tar"):
        build_model("stdc1", 19, backbone_weights=tmp_path / "stdc2_imagenet.tar")
