"""Networks: outputs, size figures against the spec, ONNX, torch.compile, channels-last."""

from functools import partial

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bisestdc_core.models import SegmentationNetwork, SegOutputs, build_model
from bisestdc_core.models.backbones import STDC2_LAYERS, STDCNet
from bisestdc_core.models.layers import SegHead
from bisestdc_core.models.segmentation import NetworkSpec

# Spec figures: main-path parameters (19 classes) and the seed's multiply-accumulates at
# 1x3x512x1024 as torch.utils.flop_counter counts them (FLOPs / 2).
SPEC_PARAMS_M = {"bisestdc": 8.981, "stdc1": 8.275, "stdc2": 12.306}
SPEC_SEED_GMACS = {"bisestdc": 65.54, "stdc1": 23.08, "stdc2": 29.67}
TRAINING_HEADS = ("aux_head", "detail_head")


def main_path_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(TRAINING_HEADS))


def gmacs(module, *inputs) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops() / 2e9


def seed_extra_head_gmacs(model, name: str, h: int, w: int) -> float:
    """MACs of the heads the seed's code also runs at inference.

    The seed's forward computes every head in eval mode: the auxiliary heads, the trained
    detail head and three detail heads (on the 1/2, 1/4 and 1/16 taps) it never trains.
    """
    total = 0.0
    heads = [(m, s) for m, s in (("aux_head4", 4), ("aux_head8", 8), ("aux_head16", 16))
             if hasattr(model, m)]
    for attr, stride in heads:
        head = getattr(model, attr)
        total += gmacs(head, torch.zeros(1, head.conv.conv.in_channels, h // stride, w // stride))
    detail_stride = model.fusion_stride if name == "bisestdc" else 8
    total += gmacs(model.detail_head, torch.zeros(1, 256, h // detail_stride, w // detail_stride))
    semantic_1_4 = 64  # the untrained stride-4 detail head sits on STDC's 64-channel 1/4 tap
    for ch, stride in ((32, 2), (semantic_1_4, 4), (512, 16)):
        total += gmacs(SegHead(ch, 64, 1), torch.zeros(1, ch, h // stride, w // stride))
    return total


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bisestdc", "stdc1", "stdc2"])
def test_params_and_macs_match_spec(name):
    # On the meta device (the networks, the heads and the zeros alike): tensors with shapes
    # but no data. Parameter and FLOP counts follow from shapes alone, so they are the same,
    # without seconds of arithmetic per network at 512 x 1024.
    with torch.device("meta"):
        model = build_model(name, 19).eval()
        params_m = main_path_params(model) / 1e6
        main_gmacs = gmacs(model, torch.zeros(1, 3, 512, 1024))
        seed_gmacs = main_gmacs + seed_extra_head_gmacs(model, name, 512, 1024)
    print(f"{name}: main-path params {params_m:.3f} M (spec {SPEC_PARAMS_M[name]}), "
          f"main-path MACs {main_gmacs:.2f} G, with the heads the seed also runs "
          f"{seed_gmacs:.2f} G (spec {SPEC_SEED_GMACS[name]})")
    assert params_m == pytest.approx(SPEC_PARAMS_M[name], rel=0.01)
    assert seed_gmacs == pytest.approx(SPEC_SEED_GMACS[name], rel=0.01)
    # Our inference path computes the main head only, so it is strictly cheaper.
    assert main_gmacs < 0.8 * SPEC_SEED_GMACS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bisestdc", "stdc1", "stdc2"])
def test_eval_returns_main_logits_and_train_returns_all_heads(name):
    torch.manual_seed(0)
    model = build_model(name, 5)
    x = torch.randn(2, 3, 64, 96)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5, 64, 96)
    model.train()
    out = model(x)
    assert isinstance(out, SegOutputs)
    assert out.main.shape == (2, 5, 64, 96)
    assert len(out.aux) == (3 if name == "bisestdc" else 2)
    assert all(a.shape == (2, 5, 64, 96) for a in out.aux)
    stride = 4 if name == "bisestdc" else 8
    assert out.detail.shape == (2, 1, 64 // stride, 96 // stride)


def test_eval_computes_no_training_head():
    model = build_model("bisestdc", 3).eval()
    called = []
    for attr in ("aux_head4", "aux_head8", "aux_head16", "detail_head"):
        getattr(model, attr).register_forward_hook(lambda *_a, n=attr: called.append(n))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert called == []


@pytest.mark.slow
def test_a_new_spec_is_all_a_new_network_needs():
    """STDC2 fused at 1/4: the context path grows ARM8, the heads follow the spec."""
    spec = NetworkSpec("STDC2-Seg at 1/4", partial(STDCNet, STDC2_LAYERS), fusion_stride=4,
                       aux_heads=((4, 32), (16, 64)))
    model = SegmentationNetwork(spec, 3)
    assert hasattr(model.context, "arm8") and not hasattr(model, "aux_head8")
    assert model.ffm.convblk.conv.in_channels == 64 + 128  # STDC's 1/4 tap + context
    assert model.aux_head4.conv.conv.out_channels == 32
    x = torch.randn(2, 3, 64, 96)
    out = model.train()(x)
    assert [a.shape for a in out.aux] == [(2, 3, 64, 96)] * 2
    assert out.detail.shape == (2, 1, 16, 24)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 3, 64, 96)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'stdc3'"):
        build_model("stdc3", 19)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bisestdc", "stdc1"])
def test_channels_last_gives_same_logits(name):
    torch.manual_seed(1)
    model = build_model(name, 4).eval()
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert torch.allclose(ref, out, atol=1e-4)


@pytest.mark.slow
def test_onnx_export_opset17(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(2)
    model = build_model("bisestdc", 4).eval()
    x = torch.randn(1, 3, 64, 128)
    path = tmp_path / "net.onnx"
    torch.onnx.export(model, (x,), str(path), opset_version=17, input_names=["image"],
                      output_names=["logits"], dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert abs(out - ref).max() < 1e-3


@pytest.mark.slow
def test_torch_compile_runs_on_cpu():
    """torch.compile (Inductor) and channels-last inputs give the eager logits.

    The one compile test (test_export.py had a second copy, 7-200 s each): a network with
    street-frame BN statistics, whose logits reach tens, compared relative to their scale."""
    from inference_helpers import nondegenerate_model

    torch.manual_seed(0)
    model = nondegenerate_model("stdc1")
    x = torch.randn(1, 3, 64, 128)
    with torch.inference_mode():
        ref = model(x)
        channels_last = model(x.contiguous(memory_format=torch.channels_last))
    scale = ref.abs().max().item()
    assert (ref - channels_last).abs().max().item() <= 1e-5 * scale + 1e-5
    compiled = torch.compile(model)
    with torch.inference_mode():
        out = compiled(x)
    assert (ref - out).abs().max().item() <= 1e-4 * scale + 1e-4
