"""Student checkpoints: one file holds the model (config, weights, input statistics) and, for
training, everything ``--resume`` needs to go on as if it had never stopped (optimizer, schedule,
gradient scaler, step, random states).

Writes are atomic (a temporary file, then a rename), so a crash while saving leaves the previous
checkpoint whole. Every way a file can fail to be a usable checkpoint raises CheckpointError with
the path and what is wrong.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from ros2_radar_pose.student.model import RadarPoseStudent, StudentConfig

FORMAT = "ros2_radar_pose.student.v1"


class CheckpointError(ValueError):
    """A file that is not a usable student checkpoint."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"checkpoint {path}: {problem}")
        self.path = Path(path)


def save_checkpoint(path: str | Path, model: RadarPoseStudent, **training_state: Any) -> Path:
    """Write ``model`` (its config and state dict) plus ``training_state`` (step, optimizer state
    dicts, ...: anything torch.save takes) to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)                      # unwrap DistributedDataParallel
    payload = {"format": FORMAT, "config": dataclasses.asdict(model.config),
               "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **training_state}
    partial = path.with_name(f".{path.name}.partial")
    torch.save(payload, partial)
    os.replace(partial, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents (tensors on the CPU), checked to be a student checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file" if not path.exists() else "not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)   # loading must not run code
    except Exception as error:                     # torch raises many types for a damaged file
        raise CheckpointError(path, f"cannot be read ({type(error).__name__}: {error}); "
                              "it is damaged or not a torch file") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(path, f"not a student checkpoint of format {FORMAT} (found {found!r})")
    return payload


def config_of(payload: dict[str, Any], path: str | Path = "<memory>") -> StudentConfig:
    """The StudentConfig saved in a checkpoint."""
    try:
        # checkpoints from before anchoring at the cloud's centroid have no "centred": they are not
        return StudentConfig(**{"centred": False, **payload["config"]})
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(path, f"its student config does not fit this version: {error}") from error


def load_student(path: str | Path, device: str | torch.device = "cpu",
                 expect: dict[str, Any] | None = None) -> RadarPoseStudent:
    """The trained student of a checkpoint, in eval mode on ``device``. ``expect``: config fields
    the caller relies on (e.g. ``{"joint_set": "smpl_24"}``); a checkpoint with other values is
    refused rather than giving a skeleton of the wrong shape."""
    payload = read_checkpoint(path)
    config = config_of(payload, path)
    for field, wanted in (expect or {}).items():
        if getattr(config, field, None) != wanted:
            raise CheckpointError(path, f"was trained with {field}={getattr(config, field, None)!r}, "
                                  f"but {wanted!r} is wanted")
    model = RadarPoseStudent(config)
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, KeyError) as error:
        raise CheckpointError(path, f"its weights do not match its config: {error}") from error
    try:
        return model.to(device).eval()
    except (RuntimeError, AssertionError) as error:
        raise CheckpointError(path, f"cannot be put on device {device!r}: {error}") from error
