"""Deprecated: `python -m resize_jax.models.convert` is now `python -m resize_jax.tools.convert`."""

if __name__ == "__main__":
    from resize_jax.tools.moved import run_moved_command

    run_moved_command("resize_jax.models.convert", "resize_jax.tools.convert")
