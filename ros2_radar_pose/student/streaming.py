"""Streaming inference: one cloud in, the pose of that frame out.

A ring buffer holds the last W frames (W = the student's window), empty frames before the first
cloud, exactly as training pads the start of a recording. Each new cloud replaces the oldest
frame and the network predicts the newest one; attention is not causal and only ever sees the
buffer (student/model.py), so no step uses performer-pytorch's causal path.

The buffer holds frames *encoded*: the point encoder pools each frame on its own, so a frame's
token never changes once made, and a push encodes one frame rather than W (re-encoding the
window was over half of a push's time), next to each frame's centroid (NaN for a frame without
points; a centred student anchors at them). Everything after the encoder is the model's own
``decode``, with the heads read at the newest token only; the result equals
``model(points, mask)`` on the packed window to float rounding (test/test_streaming.py). Encoded
frames belong to the weights they were made with: after changing the weights, ``reset``.

With a rotation-predicting student, the 29 joints, twists and shape go through HybrIK's
analytical IK (body/hybrik_ik.py) to SMPL-24 rotations, turned into global orientations for TF.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ros2_radar_pose.body.hybrik_ik import inverse_kinematics
from ros2_radar_pose.body.models import BodyModel, load_body_model
from ros2_radar_pose.body.rotations import matrix_to_quaternion
from ros2_radar_pose.student.inputs import pack_cloud
from ros2_radar_pose.student.model import RadarPoseStudent, StudentPose, frame_centroids


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
    # The IK's own forward kinematics: the body's forward would make the rest joints again, and SMPL's a mesh.
    solution = inverse_kinematics(targets, pose.twist.reshape(-1, 23, 2).double(), rest)
    return solution.global_rotations.reshape(*lead, 24, 3, 3)


class StreamingStudent:
    """Feed clouds in time order with ``push``; ``reset`` forgets the past (e.g. after a gap)."""

    def __init__(self, model: RadarPoseStudent, body: BodyModel | None = None):
        self.model = model.eval()
        config = model.config
        device = next(model.parameters()).device
        self.body = (body or load_body_model()).to(device) if config.rotations else None
        self._frames = torch.zeros(1, config.window, config.dim, device=device)     # encoded, newest last
        self._centroids = torch.full((1, config.window, 3), torch.nan, device=device)
        self.reset()

    @torch.inference_mode()
    def reset(self) -> None:
        """Forget every cloud: the window is empty frames again, as at the start of a recording."""
        max_points = self.model.config.max_points
        empty, _ = self._encode(np.zeros((max_points, 5), np.float32), np.zeros(max_points, bool))
        self._frames.copy_(empty.expand_as(self._frames))
        self._centroids.fill_(torch.nan)

    def _encode(self, points: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One packed frame (N, 5), (N,) -> its token (1, 1, dim), before the frame position, and its
        centroid (1, 1, 3), NaN for a frame without points."""
        device = self._frames.device
        points, mask = (torch.from_numpy(x).to(device)[None, None] for x in (points, mask))
        centroids = frame_centroids(points, mask)
        return self.model.encode(points, mask, centroids), centroids

    @property
    def window_has_points(self) -> bool:
        """Whether any frame in the window has points: without any, a pose is the training data's
        average person at its average place, not anyone the radar sees."""
        return bool(self._centroids[..., 0].isfinite().any())

    @torch.inference_mode()
    def push(self, cloud: np.ndarray) -> FramePose:
        """Add the newest cloud (N, 5) (radar frame, metres, m/s, dB) and predict its frame."""
        model = self.model
        token, centroid = self._encode(*pack_cloud(cloud, model.config.max_points))
        # Shift by one frame: W tokens of 128 floats, a copy is cheaper than index bookkeeping.
        self._frames[:, :-1] = self._frames[:, 1:].clone()
        self._frames[:, -1:] = token
        self._centroids[:, :-1] = self._centroids[:, 1:].clone()
        self._centroids[:, -1:] = centroid
        newest = model.decode(self._frames, self._centroids, newest_only=True)
        joints = newest.joints29 if newest.joints29 is not None else newest.joints
        positions = joints[0, 0, :len(model.joint_set)].double().cpu().numpy()
        if self.body is None:
            return FramePose(positions, None)
        rotations = matrix_to_quaternion(global_rotations(newest, self.body)[0, 0]).cpu().numpy()
        return FramePose(positions, rotations)
