"""`--config` that takes a config file (`configs/x.py[:args]`) or a run's `config.json`.

`train_and_evaluate` writes the run's config to `<workdir>/config.json`; passing that file back
(`train.py --config runs/x/config.json --workdir runs/x --config.num_train_steps=3000`) reruns
or extends the run with the same settings, overrides included, without retyping them.
"""

from __future__ import annotations

import json
import os

import ml_collections
from absl import flags
from ml_collections import config_dict, config_flags
from ml_collections.config_flags import config_flags as _config_flags_impl


def _from_json(value):
    # JSON has no tuples; the configs use tuples for sizes and ranges (`image_size`, ...).
    # A null was a field left unset (a placeholder): it stays overridable by any value.
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    if isinstance(value, dict):
        return ml_collections.ConfigDict({k: _from_json(v) for k, v in value.items()})
    if value is None:
        return config_dict.placeholder(object)
    return value


def load_json_config(path: str) -> ml_collections.ConfigDict:
    """The ConfigDict of a run's `config.json` (lists read back as tuples).

    Raises:
      ValueError: if `path` does not exist or does not hold a JSON object.
    """
    if not os.path.isfile(path):
        raise ValueError(f"`--config`={path!r}: no such file.")
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"`--config`={path!r} is not valid JSON: {error}.") from error
    if not isinstance(data, dict):
        raise ValueError(f"`--config`={path!r} must hold a JSON object, got {type(data).__name__}.")
    return _from_json(data)


class _ConfigOrJsonParser(_config_flags_impl.ConfigFileFlagParser):
    def parse(self, path):
        if isinstance(path, str) and path.endswith(".json"):
            config = load_json_config(path)
            if self._lock_config:
                config.lock()
            return config
        return super().parse(path)


def define_config_flag(name: str, help_string: str, flag_values=flags.FLAGS, sys_argv=None):
    """`config_flags.DEFINE_config_file(name, lock_config=True)` that also reads `.json` files.

    `sys_argv`: the command line whose `--<name>.*` overrides become flags (default
    `sys.argv`, as in ml_collections).
    """
    holder = config_flags.DEFINE_config_file(
        name, None, help_string, flag_values=flag_values, lock_config=True, sys_argv=sys_argv
    )
    flag_values[name].parser = _ConfigOrJsonParser(name=name, lock_config=True)
    return holder
