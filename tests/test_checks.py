"""resize_jax.ops.checks: the one module of argument checks. Each message names the
argument, what it got and what was expected."""

import numpy as np
import pytest

from resize_jax.ops.checks import check_int, check_number, check_positive_int, check_rate


def test_integers_are_returned_as_python_ints_and_bools_are_refused():
    assert check_int(np.int64(3), "n") == 3 and type(check_int(np.int64(3), "n")) is int
    assert check_positive_int(1, "n") == 1
    for value, minimum, kind in [
        (True, None, "an integer"),
        (2.0, None, "an integer"),
        ("3", 0, "a non-negative integer"),
        (-1, 0, "a non-negative integer"),
        (0, 1, "a positive integer"),
        (2, 3, "an integer >= 3"),
    ]:
        with pytest.raises(ValueError, match=f"^`n` must be {kind}, got {value!r}.$"):
            check_int(value, "n", minimum=minimum)


def test_numbers_are_checked_against_their_range():
    assert check_number(np.float32(0.5), "x", low=0, high=1) == 0.5
    assert check_rate(0, "p") == 0.0
    for value, kwargs, kind in [
        (np.bool_(True), {}, "a finite number"),
        (float("inf"), {}, "a finite number"),
        (float("nan"), {"finite": False}, "a number"),
        (0.0, {"low": 0, "low_open": True}, "a positive finite number"),
        (-1e-9, {"low": 0}, "a non-negative finite number"),
        (1.0, {"low": 1, "low_open": True}, "a finite number > 1"),
        (2.0, {"high": 1}, "a finite number <= 1"),
        (1.0, {"low": 0, "high": 1, "high_open": True}, r"a finite number in \[0, 1\)"),
    ]:
        with pytest.raises(ValueError, match=f"^`x` must be {kind}, got"):
            check_number(value, "x", **kwargs)
    for value in (1, -0.1, float("nan"), True):
        with pytest.raises(ValueError, match=r"`p` must be a probability in \[0, 1\), got"):
            check_rate(value, "p")
