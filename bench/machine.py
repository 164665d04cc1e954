"""What a benchmark ran on, for its JSON line: figures are comparable only on the same machine."""
from __future__ import annotations

import os
import platform

import torch


def machine(gpu: bool = False) -> dict:
    """CPU, core count, torch threads, the GPU's name when ``gpu``, Python and torch versions."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if gpu else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
