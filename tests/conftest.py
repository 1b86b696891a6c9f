"""Shared test settings.

Every test runs with one intra-op thread: the tensors of the default suite are small, and on a
busy 2-core machine several threads only wait for each other (tests ran up to 20x slower with
the default thread count). Tests that want more threads set them themselves.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
