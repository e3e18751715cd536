"""One torch thread for the model tests: their matrices are tiny, and on a busy 2-core machine two
OpenMP threads pay ~40 ms of wake-up per matmul (10-50x slower than one thread)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
