"""Starting a run from other weights when the workdir has no checkpoint of its own.

Order (each later step overrides what the earlier ones set; resuming the workdir's own
checkpoint wins over all of them and is decided by the loop before this runs):
  1. `config.model.weights` (+ `weights_source`): a torchvision / timm / Keras file into
     the backbone. A head of another size stays freshly initialised.
  2. `config.frontend.saliency_net_weights` (+ `saliency_net_weights_source`): a ResNet
     file into the saliency sampler's trunk (`saliency_net="resnet18_layer3"`).
  3. `config.init_from` + `config.init_parts`, then each rule of `config.init_rules`:
     variables copied from other runs' latest checkpoints (or `resize_jax.tools.convert`
     outputs), selected by path patterns.

Path patterns name variables by their '/'-joined path without the collection
("backbone/stage1_block1/conv1/conv/kernel"; BatchNorm statistics share their layer's path).
`*` matches within one name, `**` across names, a pattern without wildcards also matches
everything under it ("backbone" = "backbone/**"), and a leading `!` excludes:
"backbone,!backbone/head". Every pattern must match something, or the run stops with an
error naming it. `config.init_rules` is "RUN:PATTERNS; RUN:PATTERNS", e.g.
"runs/learned:frontend; runs/resnet50_baseline:backbone,!backbone/head".
"""

from __future__ import annotations

import os
import re

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from resize_jax.models import pretrained
from resize_jax.train import checkpoint
from resize_jax.train.state import TrainState

CHECKPOINT_DIR = "checkpoints"
_COLLECTIONS = ("params", "batch_stats")


def initialize(config, state: TrainState, model) -> TrainState:
    """`state` (step 0) with the weights `config` asks for; see the module docstring."""
    weights = config.model.get("weights", "")
    if weights:
        source = config.model.get("weights_source", "")
        state = load_pretrained(
            state, ("backbone",), config.model.name, model.backbone, weights, source, "model"
        )
    saliency_weights = config.frontend.get("saliency_net_weights", "")
    if saliency_weights:
        net = getattr(model.frontend, "saliency_net", None)
        if not hasattr(net, "network"):
            raise ValueError(
                "`config.frontend.saliency_net_weights` needs a pretrained-able saliency "
                f"network, e.g. `config.frontend.saliency_net='resnet18_layer3'`; got {net!r}."
            )
        source = config.frontend.get("saliency_net_weights_source", "") or "torchvision"
        state = load_pretrained(
            state,
            ("frontend", "saliency_net", "resnet"),
            net.backbone,
            net.network(),
            saliency_weights,
            source,
            "frontend.saliency_net",
        )
    for run, patterns, field in _rules(config):
        state = load_matching(state, run, patterns, field)
    return state


def _rules(config) -> list[tuple[str, str, str]]:
    rules = []
    if config.get("init_from"):
        rules.append((config.init_from, config.get("init_parts", ""), "config.init_parts"))
    for item in filter(None, (s.strip() for s in str(config.get("init_rules", "")).split(";"))):
        run, sep, patterns = item.rpartition(":")
        if not sep or not run.strip() or not patterns.strip():
            raise ValueError(
                f"`config.init_rules` entries must look like 'RUN_DIR:PATTERNS', got {item!r}."
            )
        rules.append((run.strip(), patterns, "config.init_rules"))
    return rules


def load_pretrained(
    state, where: tuple[str, ...], name: str, module, path: str, source: str, field: str
):
    """Imports the weights file `path` of backbone `name` (`module`, unbound) into the
    sub-tree `where` of the state's variables."""
    if not source:
        raise ValueError(
            f"`config.{field}.weights_source` must name the file's framework "
            f"({list(pretrained.SOURCES)}) when weights are given."
        )
    rec = pretrained.recipe(source, name)
    tensors = pretrained.read_source(path, source, name, model=module)
    target = {c: _subtree(getattr(state, c), where) for c in _COLLECTIONS}
    conversion = pretrained.import_variables(
        tensors, module, rec, where=f"`config.{field}` weights file {path!r}", target=target
    )
    for module_path in conversion.fresh:
        logging.warning(
            "%s: %s keeps its fresh initialisation (its size differs from the file's).",
            path,
            "/".join((*where, module_path)),
        )
    logging.info("Loaded %s weights from %s into %s.", source, path, "/".join(where))
    new = {}
    for collection in _COLLECTIONS:
        if not target[collection] and not conversion.variables[collection]:
            # Nothing of this collection here (a backbone without BatchNorm, e.g. a ViT).
            new[collection] = getattr(state, collection)
            continue
        loaded = jax.tree.map(
            lambda s, t: jax.device_put(np.asarray(s, t.dtype), t.sharding),
            conversion.variables[collection],
            target[collection],
        )
        new[collection] = _replace(getattr(state, collection), where, loaded)
    return state.replace(params=new["params"], batch_stats=new["batch_stats"])


def _subtree(tree, where):
    for key in where:
        if key not in tree:
            return {}
        tree = tree[key]
    return tree


def _replace(tree, where, value):
    if not where:
        return value
    return {**tree, where[0]: _replace(tree[where[0]], where[1:], value)}


def compile_pattern(pattern: str) -> re.Pattern:
    """A path pattern as a regex: `**` any names, `*` within a name, no wildcard: a prefix."""
    pattern = pattern.strip().strip("/")
    if not any(c in pattern for c in "*?["):
        return re.compile(re.escape(pattern) + r"(/.*)?")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def select(paths: list[str], patterns: str, field: str) -> list[str]:
    """The `paths` that an include pattern matches and no `!` pattern does.

    Raises:
      ValueError: naming `field` and the pattern, for a pattern that matches no path.
    """
    items = (
        [p.strip() for p in patterns.split(",") if p.strip()]
        if isinstance(patterns, str)
        else list(patterns)
    )
    includes = [p for p in items if not p.startswith("!")]
    excludes = [p[1:] for p in items if p.startswith("!")]
    if not includes:
        raise ValueError(f"`{field}` must name at least one path pattern, got {patterns!r}.")
    tops = sorted({p.split("/")[0] for p in paths})
    for pattern in includes + excludes:
        regex = compile_pattern(pattern)
        if not any(regex.fullmatch(p) for p in paths):
            raise ValueError(
                f"`{field}` pattern {pattern!r} matches no variable of this model "
                f"(top-level parts: {tops})."
            )
    include = [compile_pattern(p) for p in includes]
    exclude = [compile_pattern(p) for p in excludes]
    return [
        p
        for p in paths
        if any(r.fullmatch(p) for r in include) and not any(r.fullmatch(p) for r in exclude)
    ]


def _flat(tree, prefix=()) -> dict[str, object]:
    out = {}
    for key, value in (tree or {}).items():
        if hasattr(value, "items"):
            out.update(_flat(value, (*prefix, str(key))))
        else:
            out["/".join((*prefix, str(key)))] = value
    return out


def read_run(run: str) -> dict:
    """{"params", "batch_stats"} of the latest checkpoint under `run`/checkpoints."""
    directory = os.path.join(os.path.abspath(run), CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        raise ValueError(f"Run {run!r} has no {CHECKPOINT_DIR}/ directory to initialise from.")
    with ocp.CheckpointManager(directory) as manager:
        step = manager.latest_step()
        if step is None:
            raise ValueError(f"Run {run!r} holds no checkpoint to initialise from.")
        problem = checkpoint.verify_step(checkpoint.step_directory(directory, step))
        if problem is not None:
            raise ValueError(
                f"Run {run!r}: its newest checkpoint, step {step}, is corrupt: {problem}."
            )
        restored = manager.restore(step, args=ocp.args.StandardRestore())
    return {c: restored.get(c) or {} for c in _COLLECTIONS}


def load_matching(state: TrainState, run: str, patterns: str, field: str) -> TrainState:
    """Copies the variables that `patterns` select from `run`'s latest checkpoint into
    `state`; the step and optimizer state stay as they are.

    Raises:
      ValueError: naming `field`, for a pattern matching nothing, and listing the selected
        variables that `run` lacks or holds with another shape.
    """
    source = read_run(run)
    targets = {c: _flat(getattr(state, c)) for c in _COLLECTIONS}
    paths = sorted({p for c in _COLLECTIONS for p in targets[c]})
    chosen = set(select(paths, patterns, field))
    missing, misshaped, new = [], [], {}
    for collection in _COLLECTIONS:
        flat_source = _flat(source[collection])
        for path, target in targets[collection].items():
            if path not in chosen:
                continue
            if path not in flat_source:
                missing.append(f"{collection}/{path}")
                continue
            value = flat_source[path]
            if tuple(np.shape(value)) != tuple(target.shape):
                misshaped.append(f"{collection}/{path}: {np.shape(value)} vs {target.shape}")
                continue
            new[(collection, path)] = jax.device_put(
                np.asarray(value, target.dtype), target.sharding
            )
    if missing or misshaped:
        raise ValueError(
            f"`{field}`: run {run!r} cannot provide {patterns!r}: missing {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}; other shapes {misshaped[:10]}"
            f"{' ...' if len(misshaped) > 10 else ''} (exclude them with '!PATH')."
        )
    logging.info("Loaded %d variables (%s) from %s.", len(new), patterns, run)
    updated = {}
    for collection in _COLLECTIONS:
        tree = getattr(state, collection)
        updated[collection] = jax.tree_util.tree_map_with_path(
            lambda kp, leaf, c=collection: new.get((c, _key_path(kp)), leaf), tree
        )
    return state.replace(params=updated["params"], batch_stats=updated["batch_stats"])


def _key_path(key_path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in key_path)
