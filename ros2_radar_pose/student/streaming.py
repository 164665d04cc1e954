"""Streaming inference: one cloud in, the pose of that frame out.

A ring buffer holds the last W packed frames (W = the student's window), empty frames before the
first cloud, exactly as training pads the start of a recording. Each new cloud replaces the
oldest frame and the network predicts the newest one; attention is not causal and only ever
sees the buffer (student/model.py), so no step uses performer-pytorch's causal path.

With a rotation-predicting student, the 29 joints, twists and shape go through HybrIK's
analytical IK (body/hybrik_ik.py) to SMPL-24 rotations, turned into global orientations for TF.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from ros2_radar_pose.body.hybrik_ik import inverse_kinematics
from ros2_radar_pose.body.models import BodyModel, load_body_model
from ros2_radar_pose.student.inputs import pack_cloud
from ros2_radar_pose.student.model import RadarPoseStudent, StudentPose


@dataclass
class FramePose:
    """The newest frame's pose in the radar frame: ``positions`` (J, 3) of the student's joint
    set, ``rotations`` (J, 4) global orientations (x, y, z, w), or None for a joint set without
    rotations."""

    positions: np.ndarray
    rotations: np.ndarray | None


def global_rotations(pose: StudentPose, body: BodyModel) -> torch.Tensor:
    """SMPL-24 global rotations (..., 24, 3, 3) from a rotation-predicting student's output (any
    leading shape), by HybrIK's IK with the rest joints of ``body`` for the predicted shape."""
    lead = pose.joints29.shape[:-2]
    targets = pose.joints29.reshape(-1, 29, 3).double()
    betas = pose.betas.reshape(len(targets), -1).double()
    rest = body.rest_joints(betas)
    solution = inverse_kinematics(targets, pose.twist.reshape(-1, 23, 2).double(), rest)
    return body(betas, solution.local_rotations).global_rotations.reshape(*lead, 24, 3, 3)


class StreamingStudent:
    """Feed clouds in time order with ``push``; ``reset`` forgets the past (e.g. after a gap)."""

    def __init__(self, model: RadarPoseStudent, body: BodyModel | None = None):
        self.model = model.eval()
        config = model.config
        self.body = (body or load_body_model()).to(next(model.parameters()).device) if config.rotations else None
        device = next(model.parameters()).device
        self._points = torch.zeros(1, config.window, config.max_points, 5, device=device)
        self._mask = torch.zeros(1, config.window, config.max_points, dtype=torch.bool, device=device)

    def reset(self) -> None:
        self._points.zero_()
        self._mask.zero_()

    @torch.inference_mode()
    def push(self, cloud: np.ndarray) -> FramePose:
        """Add the newest cloud (N, 5) (radar frame, metres, m/s, dB) and predict its frame."""
        points, mask = pack_cloud(cloud, self.model.config.max_points)
        # Shift by one frame: W is tens of frames of 64 points, a copy is cheaper than index bookkeeping.
        self._points[0, :-1] = self._points[0, 1:].clone()
        self._mask[0, :-1] = self._mask[0, 1:].clone()
        self._points[0, -1] = torch.from_numpy(points)
        self._mask[0, -1] = torch.from_numpy(mask)
        pose = self.model(self._points, self._mask)
        newest = StudentPose(*(None if t is None else t[:, -1:] for t in
                               (pose.root, pose.joints, pose.twist, pose.betas, pose.joints29)))
        positions = newest.joints[0, 0].double().cpu().numpy()
        if self.body is None:
            return FramePose(positions, None)
        rotations = roma.rotmat_to_unitquat(global_rotations(newest, self.body)[0, 0]).cpu().numpy()
        return FramePose(positions, rotations)
