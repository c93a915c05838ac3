"""Trains a front-end + backbone from an ml_collections config.

  python train.py --config configs/default.py:frontend=learned,runlocal --workdir runs/learned
  python train.py --config runs/learned/config.json --workdir runs/learned \\
      --config.num_train_steps=3000           # extend a finished run (or rerun it elsewhere)

`--config` takes a config file (`configs/*.py[:args]`) or a run's `config.json`. Every field
can be overridden, e.g. `--config.frontend.num_res_blocks=2`; a field the config does not
have is refused by name. The terminal shows one progress line per log interval, warnings and
the final metrics; `--verbosity=1` shows every library's log lines too. This file only parses
flags; the run itself is `resize_jax.train.train_and_evaluate`, so tests and notebooks call
it directly.
"""

import re
import sys

from resize_jax import console

console.import_tensorflow_quietly()

from absl import app, flags  # noqa: E402

from resize_jax.train import config_file, train_and_evaluate  # noqa: E402

_CONFIG = config_file.define_config_flag(
    "config", "Config file (configs/*.py[:args]) or config.json."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as error:
        # ml_collections reports an override of a missing field as a bare AttributeError
        # from deep inside flag parsing; name the field, and the closest one it suggests.
        found = re.search(r"'(\w+)", str(error))
        key = found.group(1) if found else str(error)
        given = [a.lstrip("-").split("=")[0] for a in argv[1:] if a.startswith("--config.")]
        field = next((g for g in given if g.split(".")[-1] == key), key)
        message = f"FATAL Flags parsing error: `{field}` is not a field of the config."
        close = re.search(r'Did you mean "(\w+)"', str(error))
        if close:
            message += f" Did you mean `{field.rsplit('.', 1)[0]}.{close.group(1)}`?"
        print(message, file=sys.stderr)
        sys.exit(1)
    except flags.Error as error:
        print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
        sys.exit(1)


def main(argv):
    del argv  # Unused.
    console.quiet_logging()
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
