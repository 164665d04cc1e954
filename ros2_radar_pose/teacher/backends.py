"""One interface over the teacher's backends (HybrIK, BlazePose).

A backend takes a batch of RGB images from one camera, with a person box per image (None: the
backend finds the person itself or takes the whole frame) and optionally the radar's idea of
where the person is (the cluster centre in the camera frame, to place a root the image cannot
measure), and returns one ``TeacherPose`` per image, None where it found nobody.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ros2_radar_pose.teacher.camera import PinholeCamera
from ros2_radar_pose.teacher.crop import PersonBox


@dataclass
class TeacherPose:
    """One person: SMPL-24 ``positions`` (24, 3) and global ``rotations`` (24, 3, 3) in the camera's
    optical frame (x right, y down, z forward, metres), float32; ``score`` in [0, 1]; the ``box``
    the network saw (None for a backend that finds the person itself); ``betas`` (10,) where the
    backend estimates shape, else None."""

    positions: np.ndarray
    rotations: np.ndarray
    score: float
    box: PersonBox | None = None
    betas: np.ndarray | None = None


class TeacherBackend(Protocol):
    name: str

    def estimate(self, images: np.ndarray, camera: PinholeCamera, boxes: list[PersonBox | None],
                 radar_centres: list[np.ndarray | None]) -> list[TeacherPose | None]:
        """``images`` (B, H, W, 3) uint8 RGB; ``boxes`` and ``radar_centres`` ((3,) camera frame or
        None) one per image."""
        ...


BACKENDS = ("blazepose", "hybrik")


def make_backend(name: str, hybrik_checkpoint: str = "", smpl_model: str = "", device: str = "cpu") -> TeacherBackend:
    """The backend called ``name``. ``hybrik`` needs its checkpoint and the SMPL model file (both
    licensed downloads; HybrIKCheckpointError or SMPLFileError say which is missing) and runs in
    bfloat16 on a GPU; ``blazepose`` needs the mediapipe extra and, optionally, an SMPL model for
    its skeleton."""
    from ros2_radar_pose.body.models import load_body_model

    if name == "hybrik":
        import torch

        from ros2_radar_pose.body.smpl_file import WHERE_FROM, SMPLFileError
        from ros2_radar_pose.teacher.hybrik import HybrIKBackend, HybrIKCheckpointError, load_hybrik

        if not smpl_model:
            raise SMPLFileError(f"the hybrik teacher needs the SMPL model file (smpl_model), onto whose skeleton "
                                f"its IK solves; {WHERE_FROM}")
        if not hybrik_checkpoint:
            raise HybrIKCheckpointError("the hybrik teacher needs its checkpoint (hybrik_checkpoint): the ResNet-34 "
                                        "model from https://github.com/Jeff-sjtu/HybrIK")
        autocast = torch.bfloat16 if torch.device(device).type == "cuda" else None
        return HybrIKBackend(load_hybrik(hybrik_checkpoint, device), load_body_model(smpl_model), device=device,
                             autocast=autocast)
    if name == "blazepose":
        from ros2_radar_pose.teacher.blazepose import BlazePoseBackend

        return BlazePoseBackend(load_body_model(smpl_model or None))
    raise ValueError(f"unknown teacher backend {name!r}: choose {' or '.join(BACKENDS)}")
