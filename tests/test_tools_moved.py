"""The commands' old module paths still run the moved tools, with a deprecation warning."""

import runpy
import sys

import pytest


# Imported by other tests in the same process already: runpy notes it, harmlessly.
@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("resize_jax.demo", "resize_jax.tools.demo"),
        ("resize_jax.report", "resize_jax.tools.report"),
        ("resize_jax.apply", "resize_jax.tools.apply"),
        ("resize_jax.models.summary", "resize_jax.tools.summary"),
    ],
)
def test_old_command_warns_and_runs_the_tool(old, new, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [old, "--help"])
    with (
        pytest.warns(DeprecationWarning, match=rf"python -m {new}`"),
        pytest.raises(SystemExit) as exit_info,
    ):
        runpy.run_module(old, run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    # The tool's own argparse help: its options are listed.
    assert "--" in capsys.readouterr().out.split("options:")[-1]
