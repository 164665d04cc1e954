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

A push runs two fixed-shape steps, encoding the newest frame and predicting it from the window,
each of some hundred small tensor operations, where Python's dispatch through the modules took
about half the time. Both are traced once (``torch.jit.trace``) and run as TorchScript graphs,
which share the model's parameters (weights changed in place are seen). Tracing records shapes as
constants, which is safe here: a push's shapes never change, and no step branches on values (the
anchors' choices are ``torch.where``). ``torch.jit.trace`` is deprecated in favour of
``torch.compile``, which needs a C++ compiler and tens of seconds to start a node.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

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


class _FrameEncoder(nn.Module):
    """One packed frame, points (1, 1, N, 5) and mask (1, 1, N) -> its token (1, 1, dim), before
    the frame position, and its centroid (1, 1, 3), NaN for a frame without points."""

    def __init__(self, model: RadarPoseStudent):
        super().__init__()
        self.model = model

    def forward(self, points: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centroids = frame_centroids(points, mask)
        return self.model.encode(points, mask, centroids), centroids


class _NewestFrame(nn.Module):
    """A window's tokens (1, W, dim) and centroids (1, W, 3) -> the newest frame's joint positions
    (J, 3) float64 and, with a body, global rotations (J, 4) as quaternions (x, y, z, w)."""

    def __init__(self, model: RadarPoseStudent, body: BodyModel | None):
        super().__init__()
        self.model, self.body = model, body

    def forward(self, frames: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        newest = self.model.decode(frames, centroids, newest_only=True)
        positions = newest.joints[0, 0].double()              # the joint set's, the first of joints29
        if self.body is None:
            return (positions,)
        return positions, matrix_to_quaternion(global_rotations(newest, self.body)[0, 0])


def _traced(module: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """``module`` as a TorchScript graph traced on ``inputs`` (see the module docstring), or the
    module itself, with a warning, where tracing fails."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The deprecation, and the tracer's notes on shapes read as Python numbers: shapes are fixed here.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return torch.jit.trace(module, inputs, check_trace=False)
    except Exception as error:  # noqa: BLE001 - any failure leaves the eager module, which is correct
        warnings.warn(f"streaming student: tracing {type(module).__name__} failed ({error}); running it "
                      "eagerly, about twice as slow", RuntimeWarning, stacklevel=3)
        return module


class StreamingStudent:
    """Feed clouds in time order with ``push``; ``reset`` forgets the past (e.g. after a gap).
    ``traced=False`` runs the modules eagerly (the same arithmetic, slower)."""

    def __init__(self, model: RadarPoseStudent, body: BodyModel | None = None, traced: bool = True):
        self.model = model.eval()
        config = model.config
        device = next(model.parameters()).device
        self.body = body = (body or load_body_model()).to(device) if config.rotations else None
        self._frames = torch.zeros(1, config.window, config.dim, device=device)     # encoded, newest last
        self._centroids = torch.full((1, config.window, 3), torch.nan, device=device)
        self._empty = (torch.zeros(1, 1, config.max_points, 5, device=device),
                       torch.zeros(1, 1, config.max_points, dtype=torch.bool, device=device))
        self._encoder, self._newest = _FrameEncoder(model), _NewestFrame(model, body)
        if traced:
            self._encoder = _traced(self._encoder, *self._empty)
            self._newest = _traced(self._newest, self._frames, self._centroids)
        self.reset()

    @torch.inference_mode()
    def reset(self) -> None:
        """Forget every cloud: the window is empty frames again, as at the start of a recording."""
        empty, _ = self._encoder(*self._empty)
        self._frames.copy_(empty.expand_as(self._frames))
        self._centroids.fill_(torch.nan)

    @property
    def window_has_points(self) -> bool:
        """Whether any frame in the window has points: without any, a pose is the training data's
        average person at its average place, not anyone the radar sees."""
        return bool(self._centroids[..., 0].isfinite().any())

    @torch.inference_mode()
    def push(self, cloud: np.ndarray) -> FramePose:
        """Add the newest cloud (N, 5) (radar frame, metres, m/s, dB) and predict its frame."""
        device = self._frames.device
        points, mask = (torch.from_numpy(x).to(device)[None, None]
                        for x in pack_cloud(cloud, self.model.config.max_points))
        token, centroid = self._encoder(points, mask)
        # Shift by one frame: W tokens of 128 floats, a copy is cheaper than index bookkeeping.
        self._frames[:, :-1] = self._frames[:, 1:].clone()
        self._frames[:, -1:] = token
        self._centroids[:, :-1] = self._centroids[:, 1:].clone()
        self._centroids[:, -1:] = centroid
        newest = self._newest(self._frames, self._centroids)
        positions = newest[0].cpu().numpy()
        return FramePose(positions, newest[1].cpu().numpy() if len(newest) > 1 else None)
