"""Parsing of config-file arguments: `configs/x.py:frontend=learned,runlocal`."""

from __future__ import annotations

from resize_jax.extras import require

require("train", "resize_jax.config_args")

import ml_collections
from ml_collections import config_dict


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses "a=1,b=x,flag" into a ConfigDict over `defaults` (types follow the defaults).

    A bare name sets a boolean default to True (`runlocal`). Unknown keys raise ValueError
    listing the known ones, so a typo in the command line does not pass silently.
    """
    result = ml_collections.ConfigDict(defaults)
    if not arg:
        return result
    for item in filter(None, (s.strip() for s in arg.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if key not in defaults:
            raise ValueError(f"Unknown config argument {key!r}; known: {sorted(defaults)}.")
        default = defaults[key]
        if not sep:
            if not isinstance(default, bool):
                raise ValueError(f"Config argument {key!r} needs a value ({key}=...).")
            result[key] = True
        elif isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"Config argument {key!r} must be true or false, got {value!r}.")
            result[key] = value.lower() in ("true", "1")
        else:
            result[key] = type(default)(value)
    return result


def _optional_simple_type(annotation) -> type | None:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    names = {part.strip() for part in str(text).split("|")}
    if "None" not in names and "Optional" not in str(text):
        return None
    for kind in (bool, int, float, str):
        if kind.__name__ in names or f"Optional[{kind.__name__}]" in str(text):
            return kind
    return None


_NOT_CONFIGURABLE = {"parent", "name", "dtype", "param_dtype", "num_classes"}
_SIMPLE = (bool, int, float, str, tuple)


def module_section(name: str, factory, **overrides) -> ml_collections.ConfigDict:
    """A config section {name, <field>: default, ...} for a linen module class or partial.

    Every field with a plain default (numbers, strings, tuples) becomes overridable from the
    command line (`--config.frontend.num_res_blocks=2`), so configs never fall out of step
    with the modules. `overrides` replace defaults and may add fields without one.
    """
    import dataclasses
    import functools

    keywords = {}
    while isinstance(factory, functools.partial):
        keywords = {**factory.keywords, **keywords}
        factory = factory.func
    section = {"name": name}
    deprecated = getattr(factory, "renamed_fields", {})  # Old names stay out of configs.
    for field in dataclasses.fields(factory):
        if field.name in _NOT_CONFIGURABLE or field.name in deprecated or not field.init:
            continue
        default = keywords.get(field.name, field.default)
        if isinstance(default, _SIMPLE) and not isinstance(default, type):
            section[field.name] = default
        elif default is None:
            # An optional number or string (`fwhm: float | None = None`) stays overridable
            # as a typed placeholder; optional modules (`saliency_net`) are not config.
            kind = _optional_simple_type(field.type)
            if kind is not None:
                section[field.name] = config_dict.placeholder(kind)
    section.update(overrides)
    return ml_collections.ConfigDict(section)


def training_defaults() -> ml_collections.ConfigDict:
    """The fields every experiment shares, with defaults; configs override what they need.

    Fields:
      seed: the run's seed (initialisation, data order, dropout); prng_impl: JAX's random
        generator for initialisation and dropout ("rbg" or "threefry2x32").
      batch_size / eval_batch_size: GLOBAL batch sizes (per-device × devices); each must be a
        multiple of the device and process counts.
      num_train_steps, log_every_steps, eval_every_steps (0 = only at the end),
      checkpoint_every_steps (0 = only at the end), keep_checkpoints.
      init_from / init_parts: another run's workdir and the path patterns to load from it
        ("backbone", "frontend", "backbone,!backbone/head"), for two-stage training and
        resizer transfer; init_rules: "RUN:PATTERNS; RUN:PATTERNS" for several runs
        (resize_jax.train.init_from). Pretrained files: `model.weights` / `weights_source`.
      resume_changes: the fields allowed to differ from the config saved in the workdir
        when a run resumes ("num_train_steps,optimizer.learning_rate"); any other
        difference is refused (docs/reliability.md).
      eval_images: how many eval images TensorBoard shows at each evaluation, with what the
        front-end makes of them (0 = none).
      dtype: "float32" or "bfloat16" computation (parameters and optimizer state stay f32).
      num_devices: -1 for every device, or the first N (single-process experiments).
      sharding: "replicated" (every device holds the whole train state) or "fsdp" (arrays of
        at least `fsdp_min_size_mb` MiB split over the devices; `resize_jax.train.sharding`).
      distributed: multi-host set-up; `enabled=True` calls `jax.distributed.initialize` with
        the given coordinator_address/num_processes/process_id (unset: auto-detected), and
        cpu_collectives="gloo" for CPU-only processes.
      optimizer: name ("sgd" | "adamw"), learning_rate (peak, for the global batch),
        schedule ("cosine" | "constant"), warmup_steps, momentum, nesterov, b1, b2,
        weight_decay (kernels only), grad_clip_norm (0 = off), lr_multipliers
        ("frontend/saliency_net:0.1,..."), freeze ("backbone,..."), accumulation_steps.
    """
    config = ml_collections.ConfigDict()
    config.seed = 0
    # JAX's "rbg" generator: deterministic for a given backend, and initialising a model with
    # it compiles about 3× faster on CPU than with the default "threefry2x32" (measured:
    # 7 s against 21 s for the learned resizer + small CNN), which dominates short runs.
    config.prng_impl = "rbg"
    config.batch_size = 64
    config.eval_batch_size = 256
    config.num_train_steps = 1000
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3
    config.eval_images = 4
    config.preemption_check_every_steps = 10
    config.init_from = ""
    config.init_parts = ""
    config.init_rules = ""
    config.resume_changes = ""
    config.dtype = "float32"
    config.num_devices = -1
    config.sharding = "replicated"
    # big_vision's threshold is 4 MiB; 1 MiB also splits ViT-B's attention kernels (768 × 12
    # × 64 f32 = 2.25 MiB, a third of its parameters). Below it an array's all-gather costs
    # more in latency than its copy costs in memory.
    config.fsdp_min_size_mb = 1.0
    config.distributed = ml_collections.ConfigDict(
        {
            "enabled": False,
            "coordinator_address": config_dict.placeholder(str),
            "num_processes": config_dict.placeholder(int),
            "process_id": config_dict.placeholder(int),
            "cpu_collectives": "",
        }
    )
    config.task = ml_collections.ConfigDict({"name": "classification", "label_smoothing": 0.0})
    config.optimizer = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 1e-3,
            "schedule": "cosine",
            "warmup_steps": 0,
            "momentum": 0.9,
            "nesterov": False,
            "b1": 0.9,
            "b2": 0.999,
            "weight_decay": 0.0,
            "grad_clip_norm": 0.0,
            "lr_multipliers": "",
            "freeze": "",
            "accumulation_steps": 1,
        }
    )
    return config


def frontend_section(name: str, output_shape, **overrides) -> ml_collections.ConfigDict:
    """`config.frontend` for a registered front-end name, or {"name": "none"}."""
    if name == "none":
        return ml_collections.ConfigDict({"name": "none"})
    from resize_jax import frontends

    cls = frontends.frontend_class(name)
    if name == "saliency":
        # The saliency network by name ("" = the small CNN, "resnet18_layer3" = the paper's)
        # and an optional weights file for it (resize_jax.train.init_from).
        overrides = {
            "saliency_net": "",
            "saliency_net_weights": "",
            "saliency_net_weights_source": "",
            **overrides,
        }
    return module_section(name, cls, output_shape=tuple(output_shape), **overrides)


def model_section(name: str, **overrides) -> ml_collections.ConfigDict:
    """`config.model` for a registered backbone name."""
    from resize_jax import models

    # A pretrained weights file and its framework (resize_jax.models.pretrained).
    overrides = {"weights": "", "weights_source": "", **overrides}
    return module_section(name, models.model_factory(name), **overrides)


def apply_runlocal(
    config,
    *,
    dataset="small_details",
    image_size=(64, 64),
    output_shape=(32, 32),
    steps=4,
    batch_size=16,
    eval_batch_size=64,
    learning_rate=None,
    warmup_steps=1,
    log_every_steps=2,
    saliency_input_shape=None,
    backbone=None,
):
    """Shrinks a paper-scale config in place to a few CPU steps on a generated set (the
    `runlocal` argument of the configs): `dataset`'s train/test splits at `image_size`, no
    augmentation, the front-end's output at `output_shape` (and a saliency sampler's network
    input at `saliency_input_shape` when given), no evaluation or checkpoint until the end;
    with `backbone` (e.g. "small_cnn") that backbone instead of the config's."""
    config.data.name = dataset
    config.data.train_split, config.data.eval_split = "train", "test"
    config.data.image_size = tuple(image_size)
    config.data.augment = False
    if config.frontend.name != "none":
        config.frontend.output_shape = tuple(output_shape)
    if config.frontend.name == "saliency" and saliency_input_shape is not None:
        config.frontend.saliency_input_shape = tuple(saliency_input_shape)
    if backbone is not None:
        config.model = model_section(backbone)
    if warmup_steps >= steps:
        raise ValueError(f"`warmup_steps`={warmup_steps} must be shorter than `steps`={steps}.")
    config.batch_size = batch_size
    config.eval_batch_size = eval_batch_size
    config.num_train_steps = steps
    if learning_rate is not None:
        config.optimizer.learning_rate = learning_rate
    config.optimizer.warmup_steps = warmup_steps
    config.log_every_steps = log_every_steps
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 0
    return config
