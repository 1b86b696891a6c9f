"""Config parsing: presets, dotted overrides, type coercion, unknown keys; the lr schedule."""

from __future__ import annotations

import pytest
from torch import nn

from infomax.training.config import (
    Config,
    coerce,
    config_differences,
    config_from_dict,
    config_to_dict,
    list_presets,
    load_config,
    register_method,
    resolve_preset,
    save_config,
)
from infomax.training.schedule import warmup_multistep


class _CfgMethod(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        width: int = 8,
        estimator: str = "jsd",
        alpha: float = 0.5,
        mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        augment: dict | None = None,
    ) -> None:
        super().__init__()


register_method("cfgfake", _CfgMethod)


def cfg(*overrides: str) -> Config:
    return load_config(None, ["method=cfgfake", *overrides])


def test_defaults_and_typed_overrides():
    c = cfg(
        "train.batch_size=32",
        "train.lr=1e-3",  # PyYAML alone reads this as a string
        "train.betas=[0.5, 0.999]",
        "train.max_steps=null",
        "train.time_budget_minutes=2",
        "train.lr_milestones=[250, 280]",
        "train.channels_last=yes",
        "data.dataset=123",  # a str field keeps the text
        "data.image_size=64",
        "model.width=16",
        "model.alpha=1",
        "model.mean=[0.1, 0.2, 0.3]",
        "model.augment={crop: 64}",
        "name=my-run",
    )
    assert c.train.batch_size == 32 and isinstance(c.train.batch_size, int)
    assert c.train.lr == pytest.approx(1e-3) and isinstance(c.train.lr, float)
    assert c.train.betas == (0.5, 0.999)
    assert c.train.max_steps is None
    assert c.train.time_budget_minutes == 2.0 and isinstance(c.train.time_budget_minutes, float)
    assert c.train.lr_milestones == [250, 280]
    assert c.train.channels_last is True
    assert c.data.dataset == "123" and c.data.image_size == 64
    assert c.model == {"width": 16, "alpha": 1.0, "mean": (0.1, 0.2, 0.3), "augment": {"crop": 64}}
    assert isinstance(c.model["alpha"], float)
    assert c.name == "my-run"
    # untouched settings keep the dataclass defaults
    assert c.train.epochs == Config().train.epochs


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.batchsize=3", ["train.batchsize", "batch_size", "valid keys of 'train'"]),
        ("model.widht=3", ["model.widht", "'width'", "valid keys of 'model'", "estimator"]),
        ("data.datset=x", ["data.datset", "dataset", "train_split"]),
        ("foo=1", ["'foo'", "valid keys at the top level", "train"]),
        ("train.batch_size=abc", ["train.batch_size", "expected int", "abc"]),
        ("train.lr=fast", ["train.lr", "expected float"]),
        ("train.betas=[0.5]", ["train.betas", "2 values"]),
        ("data.download=maybe", ["data.download", "bool"]),
        ("train.precision=fp8", ["train.precision", "fp32"]),
        ("train.batch_size=0", ["train.batch_size", "at least 1"]),
        ("model.image_size=64", ["set by the trainer", "data.image_size"]),
        ("train", ["section.key=value"]),
        ("method=nope", ["unknown method", "cfgfake"]),
    ],
)
def test_bad_overrides_name_the_problem(override, words):
    with pytest.raises(ValueError) as info:
        cfg(override)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("method: cfgfake\ntrain:\n  epochs: 3\n  learning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"train\.learning_rate.*valid keys of 'train'.*lr"):
        load_config(path)
    path.write_text("method: cfgfake\ntrain: [1, 2]\n")
    with pytest.raises(ValueError, match="train: expected a mapping"):
        load_config(path)


def test_preset_then_overrides_and_roundtrip(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "method: cfgfake\nmodel:\n  width: 4\ntrain:\n  epochs: 7\n  lr: 2.0e-4\n"
        "  betas: [0.8, 0.999]\n"
    )
    c = load_config(path, ["train.epochs=9", "model.estimator=infonce"])
    assert c.train.epochs == 9 and c.train.lr == 2e-4 and c.train.betas == (0.8, 0.999)
    assert c.model == {"width": 4, "estimator": "infonce"}
    assert c.name == "p"  # a run is named after its preset by default
    out = tmp_path / "config.yaml"
    save_config(c, out, meta={"infomax_version": "x", "git_commit": None})
    again = load_config(out)  # the meta section is ignored when read back
    assert config_to_dict(again) == config_to_dict(c)
    assert config_differences(c, again) == []


def test_config_differences_lists_changes():
    a, b = cfg("train.lr=1e-3"), cfg("train.lr=2e-3", "model.width=4", "train.epochs=5")
    diffs = config_differences(a, b, ignore=("train.epochs",))
    assert any(d.startswith("train.lr: 0.001 (run) -> 0.002 (now)") for d in diffs)
    assert any(d.startswith("model.width") for d in diffs)
    assert not any("epochs" in d for d in diffs)


def test_coerce_edge_cases():
    assert coerce(3, float, "k") == 3.0
    assert coerce(2.0, int, "k") == 2
    with pytest.raises(ValueError):
        coerce(2.5, int, "k")
    with pytest.raises(ValueError):
        coerce(True, int, "k")
    assert coerce(None, int | None, "k") is None
    assert coerce([1, 2], list[int], "k") == [1, 2]


def test_presets_resolve_by_name_and_path():
    names = list_presets()
    assert "quickstart" in names and "dim_l_nce_cifar10" in names and "amdim_stl10" in names
    p = resolve_preset("quickstart")
    assert p.is_file() and resolve_preset("quickstart.yaml") == p
    assert resolve_preset(str(p)) == p
    with pytest.raises(FileNotFoundError, match="presets: .*quickstart"):
        resolve_preset("no_such_preset")


def test_every_preset_parses():
    from infomax.training.config import get_method_factory, read_yaml

    for name in list_presets():
        raw = read_yaml(resolve_preset(name))
        get_method_factory(raw.get("method", "dim"))  # built in: never skipped
        c = config_from_dict(raw)
        assert c.method in ("dim", "amdim"), name


def test_warmup_multistep_schedule():
    # warm-up of 500 steps, then x0.2 at epochs 250 and 280 (AMDIM); 100 steps per epoch
    f = [warmup_multistep(s, 100, 500, (250, 280), 0.2) for s in (0, 249, 499, 500, 24_999)]
    assert f == pytest.approx([1 / 500, 250 / 500, 1.0, 1.0, 1.0])
    assert warmup_multistep(25_000, 100, 500, (250, 280), 0.2) == pytest.approx(0.2)
    assert warmup_multistep(28_000, 100, 500, (250, 280), 0.2) == pytest.approx(0.04)
    assert warmup_multistep(10, 100) == 1.0
