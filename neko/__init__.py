"""neko: generative error correction of recognizer output with task-guided Mixture-of-Experts LMs."""

from neko.data.schema import Example
from neko.errors import NekoError
from neko.tasks import Task, get_task, register_task

__all__ = ["Example", "NekoError", "Task", "get_task", "register_task"]
__version__ = "0.1.0"
