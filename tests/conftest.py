"""Test session settings: one passive OpenMP thread (the second core here is often busy, and two
spinning threads then run several times slower than one); and the default tiny model directory,
built once for the tests that only read it."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import pytest
import torch
from correct_fixtures import make_model_dir

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    """`make_model_dir` with its defaults; a test that changes the files works on a copy."""
    return make_model_dir(tmp_path_factory.mktemp("model") / "tiny")
