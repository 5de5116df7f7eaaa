"""Test session settings: one passive OpenMP thread (the second core here is often busy, and two
spinning threads then run several times slower than one)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

torch.set_num_threads(1)
