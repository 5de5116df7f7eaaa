"""Correct recognizer output with a trained neko model: the `Corrector` API and `neko correct`.

The names below are imported on first use, so that the commands that need no model (`neko --help`,
`neko data ...`) start without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neko.correct.corrector import Correction, Corrector
    from neko.correct.model_dir import DEFAULT_MODEL_DIR, ModelInfo
    from neko.correct.safety import SafetyValve

_HOMES = {
    "Correction": "neko.correct.corrector",
    "Corrector": "neko.correct.corrector",
    "DEFAULT_MODEL_DIR": "neko.correct.model_dir",
    "ModelInfo": "neko.correct.model_dir",
    "SafetyValve": "neko.correct.safety",
}
__all__ = ["DEFAULT_MODEL_DIR", "Correction", "Corrector", "ModelInfo", "SafetyValve"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'neko.correct' has no attribute {name!r}")
