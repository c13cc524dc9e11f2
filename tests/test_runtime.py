"""The process settings `import avelib` applies (avelib.runtime)."""

from __future__ import annotations

import pytest
import torch

import avelib
from avelib import runtime


def test_thread_count_parses_and_rejects_bad_values():
    assert runtime.thread_count({}) == runtime.DEFAULT_THREADS
    assert runtime.thread_count({runtime.THREADS_VARIABLE: "3"}) == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="AVELIB_THREADS"):
            runtime.thread_count({runtime.THREADS_VARIABLE: bad})


def test_import_makes_algorithms_deterministic_and_records_the_state():
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark
    assert set(avelib.NUMERICS) == {"threads", "aten_cpu_capability", "mkldnn"}
    assert avelib.NUMERICS["threads"] >= 1
