"""Training configs: every field refuses bad values with one line naming the key (#17).

The walk builds bad values for every field from the field's own declaration (type, range,
choices), so a field added later without a range is caught by ``test_every_field_is_walked``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import typing

import pytest
from conftest import REPO_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bisestdc_core.training.config import (
    CHOICES,
    Config,
    ConfigError,
    config_fields,
    dump_config,
    load_config,
)

CONFIG = REPO_ROOT / "training/configs/bisestdc_synthetic.yaml"


def _bad_numbers(bounds, is_int: bool) -> list[str]:
    """Values just outside each declared limit, plus NaN/inf or a non-integer."""
    number = int if is_int else float
    bad = ["2.5", "'seven'", "true"] if is_int else ["nan", ".inf", "-.inf", "'seven'"]
    if bounds.gt is not None:
        bad.append(repr(number(bounds.gt)))  # the exclusive limit itself
    if bounds.ge is not None:
        bad.append(repr(number(bounds.ge - 1 if is_int else bounds.ge - 1e-3)))
    if bounds.lt is not None:
        bad.append(repr(number(bounds.lt)))
    if bounds.le is not None:
        bad.append(repr(number(bounds.le + 1)))
    return bad


def bad_values(key: str, f, annotation) -> list[str]:
    """YAML texts that ``key`` must refuse."""
    section, name = key.split(".")
    if (section, name) in CHOICES:
        return ["bogus", "3"]
    if annotation is bool:
        return ["maybe", "1"]
    bounds = f.metadata.get("bounds")
    origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        out = ["7", "[]" if bounds.min_len else "[[1]]"]
        if bounds.max_len is not None:
            out.append(str([64] * (bounds.max_len + 1)))
        # Next to a valid item, the bad one is the reason (an empty default: the lower bound).
        default = f.default_factory()
        good = default[0] if default else (bounds.ge if bounds.ge is not None else 1)
        good = int(good) if item is int else good
        sample = [f"[{v}, {good}]" for v in _bad_numbers(bounds, item is int)]
        return out + sample
    if bounds is not None:
        return _bad_numbers(bounds, annotation is int)
    if f.metadata.get("non_empty"):
        return ["''", "5", "[a]"]
    raise AssertionError(f"{key} has no declared range or rule")


FIELDS = config_fields()
CASES = [(key, value) for key, f, ann in FIELDS for value in bad_values(key, f, ann)]


def test_every_field_is_walked():
    walked = {key for key, _value in CASES}
    assert walked == {key for key, _f, _a in FIELDS}
    assert len(FIELDS) >= 35 and len(CASES) > 3 * len(FIELDS)


@pytest.mark.parametrize("key,value", CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_bad_value_is_one_line_naming_the_key(key, value, tmp_path, capsys):
    from bisestdc_core.cli.train import main

    out_dir = tmp_path / "run"
    overrides = [f"{key}={value}"]
    if key != "train.out_dir":
        overrides.append(f"train.out_dir={out_dir}")
    code = main(["--config", str(CONFIG), *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert f"'{key}" in lines[0], err
    assert "Traceback" not in err
    assert not out_dir.exists(), "refused before any work"


@pytest.mark.slow
def test_subprocess_exit_code_and_debug_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "training/train.py", "--config", str(CONFIG), "optim.lr=nan",
           f"train.out_dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {CONFIG}: 'optim.lr' must be a finite number > 0 and <= 10, got nan"]
    # --debug re-raises the error (Python then prints its traceback and exits with 1): seen
    # here, without a second process that spends a second importing torch to say so.
    from bisestdc_core.cli.train import main

    with pytest.raises(ConfigError, match="'optim.lr' must be a finite number > 0"):
        main(["--config", str(CONFIG), "optim.lr=nan", f"train.out_dir={tmp_path / 'run'}",
              "--debug"])


def test_cross_field_rule_warmup_start_below_peak():
    with pytest.raises(ConfigError, match="'optim.warmup_start_lr'"):
        load_config(CONFIG, ["optim.lr=0.01", "optim.warmup_start_lr=0.1"])


def test_class_weights_one_per_class_and_not_all_zero():
    cfg = load_config(CONFIG, ["model.num_classes=3", "loss.class_weights=[0.5, 1, 2]"])
    assert cfg.loss.class_weights == [0.5, 1.0, 2.0]
    with pytest.raises(ConfigError, match="'loss.class_weights' has 2 values for"):
        load_config(CONFIG, ["model.num_classes=3", "loss.class_weights=[1, 2]"])
    with pytest.raises(ConfigError, match="all 0"):
        load_config(CONFIG, ["model.num_classes=2", "loss.class_weights=[0, 0]"])
    with pytest.raises(ConfigError, match="loss.class_weights"):
        load_config(CONFIG, ["model.num_classes=2", "loss.class_weights=[1, -1]"])


# ---- property-based: the loader never raises anything but ConfigError ---------------------

_KEYS = [key for key, _f, _a in FIELDS] + ["model.typo", "nosection.key", "train"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
# Plausible values too, so that a fair share of the drawn configs is valid.
_PLAUSIBLE = st.one_of(st.integers(1, 64), st.floats(0.06, 0.99), st.sampled_from(
    ["bf16", "cpu", "stdc1", "camvid", "runs/x"]), st.lists(st.integers(32, 512), min_size=2,
                                                            max_size=2))
_VALUES = st.one_of(_PLAUSIBLE, _SCALARS, st.lists(_SCALARS, max_size=4),
                    st.dictionaries(st.text(max_size=5), _SCALARS, max_size=2))
COUNTS = {"accepted": 0, "refused": 0}


def _yaml_text(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _within_declared_ranges(cfg: Config) -> bool:
    for key, f, _ann in FIELDS:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        bounds = f.metadata.get("bounds")
        items = value if isinstance(value, list) else [value]
        if bounds is not None and not all(bounds.accepts(v) for v in items):
            return False
        if (section, name) in CHOICES and value not in CHOICES[(section, name)]:
            return False
    return all(math.isfinite(v) for v in (cfg.optim.lr, cfg.data.eval_scale))


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_KEYS), _VALUES), max_size=4))
def test_loader_accepts_only_valid_configs(pairs):
    overrides = [f"{key}={_yaml_text(value)}" for key, value in pairs]
    try:
        cfg = load_config(CONFIG, overrides)
    except ConfigError as exc:
        assert "\n" not in str(exc), "one line"
        COUNTS["refused"] += 1
        return
    COUNTS["accepted"] += 1
    assert _within_declared_ranges(cfg)


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0001, 10), st.integers(0, 5000), st.integers(1, 200000),
       st.lists(st.floats(0.01, 8), min_size=1, max_size=5))
@pytest.mark.slow
def test_valid_configs_round_trip(tmp_path_factory, lr, warmup, max_iters, scales):
    overrides = [f"optim.lr={lr!r}", f"optim.warmup_iters={warmup}",
                 f"train.max_iters={max_iters}", f"data.scales={scales!r}",
                 "optim.warmup_start_lr=0.0001"]
    cfg = load_config(CONFIG, overrides)
    path = tmp_path_factory.mktemp("rt") / "config.yaml"
    dump_config(cfg, path)
    assert load_config(path) == cfg


@pytest.mark.slow  # with the property test it counts (the same selection)
def test_property_counts_are_meaningful():
    """Runs after the property test (file order): both outcomes occurred, counts printed."""
    print(f"config loader property test: {COUNTS['accepted']} accepted, "
          f"{COUNTS['refused']} refused")
    assert COUNTS["refused"] > 50 and COUNTS["accepted"] > 5


# ---- shared bases (#14) --------------------------------------------------------------------

CONFIG_DIR = REPO_ROOT / "training/configs"
SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))
# Each shipped config's resolved values as they were when every file still spelled out all of
# them: moving values into shared bases must not change a single one.
RESOLVED = json.loads((REPO_ROOT / "test/data/training_configs_resolved.json").read_text())


def test_snapshot_covers_every_shipped_config():
    # test/data/regenerate_config_snapshot.py rewrites the snapshot when a change is intended.
    assert SHIPPED and sorted(RESOLVED) == [p.name for p in SHIPPED]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_resolves_to_its_snapshot(path):
    assert load_config(path).to_dict() == RESOLVED[path.name]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_holds_only_what_differs(path):
    """A variant names its base and writes a few values; the recipe lives in the bases."""
    import yaml

    raw = yaml.safe_load(path.read_text())
    values = sum(len(v or {}) for k, v in raw.items() if k != "base")
    limit = 20 if path.name == "bisestdc_synthetic.yaml" else 12
    assert values <= limit, f"{path.name} repeats {values} values"


def test_base_chain_merges_sections_key_by_key(tmp_path):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases/root.yaml").write_text(
        "data: {crop_size: [64, 128], batch_size: 4}\noptim: {lr: 0.05}\n")
    (tmp_path / "mid.yaml").write_text("base: bases/root.yaml\ndata: {batch_size: 2}\n")
    (tmp_path / "leaf.yaml").write_text("base: mid.yaml\ndata: {scales: [1.0]}\n")
    cfg = load_config(tmp_path / "leaf.yaml", ["optim.momentum=0.5"])
    assert cfg.data.crop_size == [64, 128] and cfg.data.batch_size == 2
    assert cfg.data.scales == [1.0] and cfg.optim.lr == 0.05 and cfg.optim.momentum == 0.5
    assert cfg.data.workers == Config().data.workers  # not in any file: the default


def test_base_cycle_is_one_line_naming_the_files(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "a.yaml")
    message = str(info.value)
    assert "\n" not in message and "cycle" in message
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert message == f"{b}: 'base' makes a cycle: {a} -> {b} -> {a}"


@pytest.mark.parametrize(("text", "message"), [
    ("base: missing.yaml\n", "missing.yaml: config file not found"),
    ("base: [a.yaml]\n", "'base' must name a config file"),
    ("base: self.yaml\n", "'base' makes a cycle"),
])
def test_bad_base_is_named(tmp_path, text, message):
    (tmp_path / "self.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "self.yaml")


def test_model_names_come_from_the_registry():
    from bisestdc_core.models import MODEL_REGISTRY

    assert CHOICES[("model", "name")] == tuple(MODEL_REGISTRY)
    with pytest.raises(ConfigError, match="'model.name' must be one of"):
        load_config(CONFIG, ["model.name=stdc9"])
