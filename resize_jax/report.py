"""Deprecated: `python -m resize_jax.report` is now `python -m resize_jax.tools.report`."""

if __name__ == "__main__":
    from resize_jax.tools.moved import run_moved_command

    run_moved_command("resize_jax.report", "resize_jax.tools.report")
