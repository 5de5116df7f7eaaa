"""Correct recognizer output with a trained neko model: the `Corrector` API and `neko correct`."""

from neko.correct.corrector import Correction, Corrector
from neko.correct.model_dir import DEFAULT_MODEL_DIR, ModelInfo
from neko.correct.safety import SafetyValve

__all__ = ["DEFAULT_MODEL_DIR", "Correction", "Corrector", "ModelInfo", "SafetyValve"]
