"""Run configuration: plain dataclasses and timm's two-stage parse.

Stage 1: a YAML preset (``--config``; a path or the bare name of a shipped preset) replaces the
dataclass defaults. Stage 2: dotted overrides (``train.batch_size=64 model.estimator=infonce``)
replace single values. Every value is parsed as YAML and then coerced to the declared type of its
field; an unknown key (in the YAML file or an override) is a :class:`ValueError` naming the key and
listing the valid keys of its section. ``model`` keys are checked against the signature of the
method's constructor (:func:`method_signature`).

>>> cfg = load_config("quickstart", ["train.batch_size=32"])  # doctest: +SKIP
>>> cfg.train.batch_size                                      # doctest: +SKIP
32

The configuration objects are used only by :mod:`infomax.training`; models and objectives receive
plain keyword arguments (``DIM(**cfg.model, in_channels=3, image_size=32)``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import os
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).resolve().parent / "presets"

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# method name -> "module:attribute" (imported on first use) or a factory registered at runtime
_METHODS: dict[str, str | Callable[..., Any]] = {
    "dim": "infomax.objectives.dim:DIM",
    "amdim": "infomax.objectives.amdim:AMDIM",
}

# keyword arguments the trainer passes to every method constructor from the dataset
BUILD_KWARGS = ("in_channels", "image_size")


#: kinds of probe the trainer can fit online, on detached features (infomax.training.online_probes)
ONLINE_PROBE_KINDS = ("linear", "amdim_mlp")
#: older names of online probe kinds -> their names now
ONLINE_PROBE_ALIASES = {"mlp": "amdim_mlp"}


@dataclass
class DataConfig:
    """Which images to train and evaluate on (see :func:`infomax.data.load_dataset`)."""

    dataset: str = "synthetic"  # a dataset name, or a path to an .npz file or an image folder
    root: str | None = None  # where datasets are stored; None: $INFOMAX_DATA or ~/.cache/infomax
    download: bool = False  # download a named dataset when it is missing
    train_split: str = "train"  # split used for self-supervised training (stl10: train+unlabeled)
    test_split: str = "test"  # split used for evaluation
    image_size: int | None = None  # resize images to this size; None: keep the stored size
    train_subset: int | None = None  # use only the first N training images (quick experiments)
    test_subset: int | None = None  # use only the first N test images


@dataclass
class TrainConfig:
    """Optimisation, precision, logging and checkpointing of one training run."""

    epochs: int = 100
    max_steps: int | None = None  # stop after this many optimiser steps (None: epochs decide)
    time_budget_minutes: float | None = None  # stop cleanly (and save) after this wall time
    batch_size: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0  # L2 penalty added by Adam (as in the reference code)
    aux_lr: float | None = None  # learning rate of the auxiliary optimiser (None: lr)
    warmup_steps: int = 0  # linear learning-rate warm-up over this many steps
    lr_milestones: list[int] = field(default_factory=list)  # epochs at which lr *= lr_gamma
    lr_gamma: float = 0.1
    grad_clip: float | None = None  # clip the gradient norm of the main parameters (None: off)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 where fast, else fp32)
    accumulate_steps: int = 1  # micro-batches per optimiser step (batch_size is the total)
    sync_batchnorm: bool = True  # batch-norm statistics over all processes (several processes)
    channels_last: bool = False
    compile: bool = False  # torch.compile the encoder
    seed: int = 0
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    log_every: int = 50  # steps between metric rows (and host-device syncs)
    checkpoint_every: int = 0  # steps between checkpoints (0: only by time and at the end)
    checkpoint_minutes: float = 15.0  # minutes between checkpoints (0: only by steps)
    keep_every_epochs: int = 0  # also keep epoch_NNNN.pt every this many epochs (0: never)
    online_probe: bool = True  # train probes on detached features during training, log accuracy
    online_probes: list[str] = field(default_factory=lambda: ["linear"])  # linear | amdim_mlp
    probe_lr: float = 1e-3
    probe_clip: float | None = None  # online probes' loss on c*tanh(logits/c) (AMDIM code: 10)
    probe_logit_reg: float = 0.0  # + this * mean(logits^2) in that loss (AMDIM code: 1e-3)


@dataclass
class EvalConfig:
    """The evaluation: after training (``after_training``) and ``infomax eval`` (whose options
    override these). The defaults are those of :mod:`infomax.evaluation.evaluate`
    (docs/evaluation.md); results go to ``RUN/eval/``."""

    after_training: bool = False  # evaluate the trained encoder when training ends
    compare_random: bool = False  # also evaluate the encoder at its random initialisation
    neighbors: bool = False  # write eval/neighbors.png (nearest neighbours of test images)
    train_split: str | None = None  # labelled split the probes learn on (None: data.train_split)
    taps: list[str] | None = None  # feature taps to evaluate (None: the encoder's probe_taps)
    probes: list[str] = field(default_factory=lambda: ["linear"])  # linear | mlp200
    knn_k: int = 200  # 0: no kNN
    knn_temperature: float = 0.1
    knn_metric: str = "cosine"  # cosine | euclidean
    knn_vote: str = "weighted"  # weighted | majority
    probe_epochs: int | None = None  # None: infomax.evaluation's default
    probe_lr: float | None = None
    probe_batch_size: int | None = None
    probe_weight_decay: float | None = None
    probe_milestones: list[int] | None = None  # None: at 60% and 85% of the epochs
    seed: int | None = None  # seeds the probes and the neighbour queries (None: train.seed)
    batch_size: int = 256  # images per forward pass when extracting features

    def __post_init__(self) -> None:
        from infomax.evaluation.probes import probe_kind  # old names load with a note

        self.probes = list(dict.fromkeys(probe_kind(p) for p in self.probes))
        if self.knn_k < 0:
            raise ValueError(f"eval.knn_k must be >= 0 (0: no kNN), got {self.knn_k}")
        if self.batch_size < 1:
            raise ValueError(f"eval.batch_size must be at least 1, got {self.batch_size}")


@dataclass
class Config:
    """Everything that defines a training run."""

    method: str = "dim"  # dim | amdim
    model: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the method
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run_dir: str = "runs"  # parent folder of run folders
    name: str | None = None  # run folder name (None: the preset's name); suffixed if taken


SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}
# keys of a config file that describe the run but are not settings (written by save_config)
IGNORED_TOP_LEVEL = ("meta",)


# ----------------------------------------------------------------------------------------------
# methods


def register_method(name: str, factory: Callable[..., Any]) -> None:
    """Make ``method: NAME`` build ``factory(**model, in_channels=..., image_size=...)``."""
    _METHODS[name] = factory


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method_factory(name: str) -> Callable[..., Any]:
    """The class (or factory) registered under ``name``; imports it on first use."""
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(list_methods())}")
    target = _METHODS[name]
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    # a built-in method: a module that fails to import is a broken installation, raised as it is
    factory = getattr(importlib.import_module(module_name), attr)
    _METHODS[name] = factory
    return factory


def method_signature(name: str) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """``(parameters, type_hints, accepts_any)`` of the constructor of method ``name``."""
    factory = get_method_factory(name)
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    params = {
        k: p
        for k, p in sig.parameters.items()
        if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: values stay as YAML parsed them
        hints = {}
    return params, hints, accepts_any


# ----------------------------------------------------------------------------------------------
# values


class _Raw(str):
    """An override value as typed on the command line (parsed as YAML unless the field is str)."""


_NONE_WORDS = ("null", "none", "~", "")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` to type ``tp`` (a dataclass field annotation); ValueError if impossible."""
    if tp is Any or tp is None:
        return _yaml_value(value) if isinstance(value, _Raw) else value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if tp is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"{key}: expected a string, got {value!r}")
    if isinstance(value, _Raw):
        value = _yaml_value(value)
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        out = scalar(value)
        if out is _BAD:
            raise ValueError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return out
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        return _coerce_sequence(value, tp, key)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise ValueError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ValueError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    return value  # an annotation we do not interpret: keep the YAML value


_BAD = object()  # what a scalar converter returns for a value it cannot convert


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE_WORDS + _FALSE_WORDS:
        return value.lower() in _TRUE_WORDS
    return _BAD


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return _BAD
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return _BAD
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _BAD


def _to_float(value: Any) -> Any:
    if isinstance(value, bool):
        return _BAD
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return _BAD
    return _BAD


_SCALARS: dict[Any, Callable[[Any], Any]] = {bool: _to_bool, int: _to_int, float: _to_float}


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    args = typing.get_args(tp)
    non_none = [a for a in args if a is not type(None)]
    optional = len(non_none) < len(args)
    if optional and (value is None or (isinstance(value, _Raw) and value.strip().lower() in
                                       _NONE_WORDS)):  # fmt: skip
        return None
    for a in non_none:
        try:
            return coerce(value, a, key)
        except ValueError:
            continue
    raise ValueError(f"{key}: expected {_type_name(tp)}, got {str(value)!r}")


def _coerce_sequence(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list like [1, 2], got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ValueError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    item = args[0] if args else Any
    out = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(out) if (origin is tuple or tp is tuple) else out


def _unknown_key(key: str, valid: Iterable[str], section: str) -> ValueError:
    valid = sorted(valid)
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = f"of {section!r}" if section else "at the top level"
    return ValueError(f"unknown config key {key!r}{hint}; valid keys {where}: {', '.join(valid)}")


def _build_section(cls: type, values: Any, section: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{section}: expected a mapping of keys to values, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in values.items():
        if k not in names:
            raise _unknown_key(f"{section}.{k}", names, section)
        kwargs[k] = coerce(v, hints[k], f"{section}.{k}")
    return cls(**kwargs)


def _build_model(method: str, values: Any) -> dict[str, Any]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"model: expected a mapping of keyword arguments, got {values!r}")
    params, hints, accepts_any = method_signature(method)
    out = {}
    for k, v in values.items():
        if k in BUILD_KWARGS:
            raise ValueError(
                f"model.{k} is set by the trainer from the dataset; "
                f"set data.image_size to resize the images instead"
            )
        if k not in params and not accepts_any:
            valid = [p for p in params if p not in BUILD_KWARGS]
            raise _unknown_key(f"model.{k}", valid, "model")
        tp = hints.get(k, Any)
        if k in params and tp is Any and params[k].default not in (inspect.Parameter.empty, None):
            tp = type(params[k].default) if type(params[k].default) in (int, float, bool) else Any
        out[k] = coerce(v, tp, f"model.{k}")
    return out


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Build and validate a :class:`Config` from nested mappings (a parsed YAML file)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    top = {f.name for f in dataclasses.fields(Config)}
    for k in raw:
        if k not in top and k not in IGNORED_TOP_LEVEL:
            raise _unknown_key(str(k), top, "")
    data = _build_section(DataConfig, raw.get("data"), "data")
    train = _build_section(TrainConfig, raw.get("train"), "train")
    evaluation = _build_section(EvalConfig, raw.get("eval"), "eval")
    method = coerce(raw.get("method", Config.method), str, "method")
    cfg = Config(
        method=method,
        model=_build_model(method, raw.get("model")),
        data=data,
        train=train,
        eval=evaluation,
        run_dir=coerce(raw.get("run_dir", Config.run_dir), str, "run_dir"),
        name=coerce(raw.get("name"), str | None, "name"),
    )
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Range checks that types alone do not catch."""
    t = cfg.train
    if t.precision not in PRECISIONS:
        raise ValueError(f"train.precision: {t.precision!r} is not one of {', '.join(PRECISIONS)}")
    dev = t.device
    if not (dev in ("auto", "cpu", "cuda", "mps") or dev.startswith("cuda:")):
        raise ValueError(f"train.device: {dev!r}; use auto, cpu, cuda, cuda:N or mps")
    for name in ("epochs", "batch_size", "log_every", "accumulate_steps"):
        if getattr(t, name) < 1:
            raise ValueError(f"train.{name} must be at least 1, got {getattr(t, name)}")
    for name in ("warmup_steps", "checkpoint_every", "keep_every_epochs"):
        if getattr(t, name) < 0:
            raise ValueError(f"train.{name} must be >= 0, got {getattr(t, name)}")
    if t.batch_size % t.accumulate_steps:
        raise ValueError(
            f"train.batch_size={t.batch_size} does not divide into train.accumulate_steps="
            f"{t.accumulate_steps} micro-batches; use a batch size that is a multiple of it"
        )
    if t.max_steps is not None and t.max_steps < 1:
        raise ValueError(f"train.max_steps must be at least 1 (or null), got {t.max_steps}")
    if t.time_budget_minutes is not None and t.time_budget_minutes <= 0:
        raise ValueError("train.time_budget_minutes must be positive (or null)")
    if t.lr <= 0:
        raise ValueError(f"train.lr must be positive, got {t.lr}")
    if not all(0 <= b < 1 for b in t.betas):
        raise ValueError(f"train.betas must lie in [0, 1), got {list(t.betas)}")
    if list(t.lr_milestones) != sorted(t.lr_milestones):
        raise ValueError(f"train.lr_milestones must increase, got {t.lr_milestones}")
    renamed = [k for k in t.online_probes if k in ONLINE_PROBE_ALIASES]
    if renamed:
        t.online_probes = [ONLINE_PROBE_ALIASES.get(k, k) for k in t.online_probes]
        warnings.warn(
            f"train.online_probes: {', '.join(renamed)} is now called "
            f"{', '.join(ONLINE_PROBE_ALIASES[k] for k in renamed)}",
            FutureWarning,
            stacklevel=2,
        )
    kinds = list(t.online_probes)
    if t.online_probe and (not kinds or len(set(kinds)) != len(kinds)):
        raise ValueError(
            f"train.online_probes must list each probe once, got {kinds}; "
            "use [linear], [amdim_mlp] or [linear, amdim_mlp] (train.online_probe=false turns "
            "them off)"
        )
    unknown = [k for k in kinds if k not in ONLINE_PROBE_KINDS]
    if unknown:
        raise ValueError(
            f"train.online_probes: unknown kind(s) {unknown}; "
            f"valid: {', '.join(ONLINE_PROBE_KINDS)}"
        )
    if t.probe_clip is not None and t.probe_clip <= 0:
        raise ValueError(f"train.probe_clip must be positive (or null), got {t.probe_clip}")
    if t.probe_logit_reg < 0:
        raise ValueError(f"train.probe_logit_reg must be >= 0, got {t.probe_logit_reg}")
    if cfg.data.image_size is not None and cfg.data.image_size < 1:
        raise ValueError("data.image_size must be positive (or null)")


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (lists instead of tuples) suitable for YAML."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


# ----------------------------------------------------------------------------------------------
# presets and overrides


def list_presets() -> list[str]:
    """Names of the presets shipped with infomax."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve_preset(name_or_path: str | os.PathLike) -> Path:
    """The YAML file for a path, or for the bare name of a shipped preset (``.yaml`` optional)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if str(path) in (path.name, f"{stem}.yaml"):  # a bare name, not a path
        candidate = PRESET_DIR / f"{stem}.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no config file {str(name_or_path)!r} and no preset of that name; "
        f"presets: {', '.join(list_presets())}"
    )


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of sections")
    return raw


def parse_override(text: str) -> tuple[list[str], _Raw]:
    """``"train.lr=1e-3"`` -> ``(["train", "lr"], "1e-3")``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(
            f"override {text!r} is not of the form section.key=value (e.g. train.lr=1e-3)"
        )
    parts = key.split(".")
    if any(not p for p in parts):
        raise ValueError(f"override {text!r}: empty part in the key {key!r}")
    return parts, _Raw(value.strip())


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with dotted overrides applied (values are checked later, when built)."""
    out = _deepcopy(raw)
    sections = set(SECTIONS) | {"model"}
    for text in overrides:
        parts, value = parse_override(text)
        if parts[0] in sections:
            if len(parts) != 2:
                raise ValueError(f"override {text!r}: use {parts[0]}.KEY=VALUE")
            section = out.get(parts[0])
            if not isinstance(section, dict):
                section = out[parts[0]] = {}
            section[parts[1]] = value
        else:
            if len(parts) != 1:
                raise _unknown_key(".".join(parts), sections, "")
            out[parts[0]] = value
    return out


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


def load_config(
    config: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
) -> Config:
    """Two-stage parse: preset (or ``base`` dict, or the defaults), then dotted overrides.

    An override ``method=OTHER`` that changes the preset's method also drops the preset's
    ``model`` section (its keys belong to the other method's constructor).
    """
    if config is not None:
        raw = read_yaml(resolve_preset(config))
    else:
        raw = _deepcopy(dict(base)) if base is not None else {}
    overrides = list(overrides)
    base_method = str(raw.get("method", Config.method))
    for text in overrides:
        parts, value = parse_override(text)
        if parts == ["method"] and str(value) != base_method:
            raw.pop("model", None)
    raw = apply_overrides(raw, overrides)
    if raw.get("name") is None and config is not None:
        raw["name"] = resolve_preset(config).stem
        if raw["name"] == "config":  # a run's own config.yaml: name the new run after its folder
            raw["name"] = Path(resolve_preset(config)).resolve().parent.name
    return config_from_dict(raw)


def save_config(
    cfg: Config, path: str | os.PathLike, meta: Mapping[str, Any] | None = None
) -> None:
    """Write ``cfg`` as YAML (loadable with ``--config``), with an optional ``meta`` section."""
    data = config_to_dict(cfg)
    if meta:
        data["meta"] = dict(meta)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    tmp = Path(f"{path}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# settings that may change when a run is resumed: they do not change what is being trained
RESUMABLE_KEYS = (
    "train.epochs",
    "train.max_steps",
    "train.time_budget_minutes",
    "train.log_every",
    "train.checkpoint_every",
    "train.checkpoint_minutes",
    "train.keep_every_epochs",
    "train.device",
    "train.precision",
    "train.channels_last",
    "train.compile",
    "train.sync_batchnorm",
    "data.root",
    "data.download",
    "data.test_split",
    "data.test_subset",
    "run_dir",
    "name",
)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(old: Config, new: Config, ignore: Iterable[str] = ()) -> list[str]:
    """Lines ``key: old -> new`` for every setting that differs (``eval.*`` and ``ignore`` not)."""
    a, b = _flatten(config_to_dict(old)), _flatten(config_to_dict(new))
    skip = set(ignore)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in skip or key.startswith("eval."):
            continue
        va, vb = a.get(key, "<unset>"), b.get(key, "<unset>")
        if va != vb:
            lines.append(f"{key}: {va!r} (run) -> {vb!r} (now)")
    return lines
