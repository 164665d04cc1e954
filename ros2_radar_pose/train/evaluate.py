"""Predictions of a trained student on labelled bags, as streaming makes them: each labelled frame
is predicted as the newest frame of the window that ends at it (student/streaming.py does the
same one frame at a time)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ros2_radar_pose.body.models import BodyModel, load_body_model
from ros2_radar_pose.body.rotations import matrix_to_quaternion
from ros2_radar_pose.student.model import RadarPoseStudent, StudentPose, windows_of
from ros2_radar_pose.student.streaming import global_rotations
from ros2_radar_pose.train.dataset import Recording, WindowDataset


@torch.inference_mode()
def predict_last_frames(model: RadarPoseStudent, recordings: Sequence[Recording], batch_size: int = 8,
                        device: str | torch.device = "cpu", progress: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, truth), both (M, J, 3) in metres for the M labelled frames of ``recordings``
    in order; J is the student's joint set (NaN in truth where a label lacks a joint)."""
    from tqdm import tqdm  # noqa: PLC0415

    was_training = model.training
    model.eval()
    joints = len(model.joint_set)
    window = model.config.window
    dataset = WindowDataset(recordings, window, windows=64)      # each frame encoded once
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    predictions, truth = [], []
    for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress, dynamic_ncols=True):
        pose = model(batch["points"].to(device), batch["mask"].to(device))
        newest = windows_of(batch["labelled"], window)[:, -1]
        predictions.append(pose.joints[:, -1][newest.to(device)].float().cpu().numpy())
        truth.append(windows_of(batch["targets"], window)[:, -1, :joints][newest].numpy())
    model.train(was_training)
    if not predictions:
        return np.zeros((0, joints, 3), np.float32), np.zeros((0, joints, 3), np.float32)
    return np.concatenate(predictions), np.concatenate(truth)


@torch.inference_mode()
def predict_orientations(model: RadarPoseStudent, recordings: Sequence[Recording], body: BodyModel | None = None,
                         batch_size: int = 8, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) SMPL-24 global orientations, both (M, 24, 4) quaternions (x, y, z, w), of the
    M labelled frames in the order of predict_last_frames, for a rotation-predicting student and
    labels that carry orientations. The prediction goes through HybrIK's IK as the node's does."""
    if not model.config.rotations or any(rec.orientations is None for rec in recordings):
        raise ValueError("orientations are scored for a student that predicts them, on labels that carry them")
    body = (body or load_body_model()).to(device)
    was_training = model.training
    model.eval()
    window = model.config.window
    loader = torch.utils.data.DataLoader(WindowDataset(recordings, window, windows=64), batch_size=batch_size)
    predictions = []
    for batch in loader:
        pose = model(batch["points"].to(device), batch["mask"].to(device))
        newest = windows_of(batch["labelled"], window)[:, -1].to(device)
        last = StudentPose(*(None if t is None else t[:, -1:][newest] for t in
                             (pose.root, pose.joints, pose.twist, pose.betas, pose.joints29)))
        predictions.append(matrix_to_quaternion(global_rotations(last, body)[:, 0]).float().cpu().numpy())
    model.train(was_training)
    truth = np.concatenate([rec.orientations[rec.labelled] for rec in recordings])
    return np.concatenate(predictions), truth


def labelled_stamps(recordings: Sequence[Recording]) -> np.ndarray:
    """Stamps (M,) in seconds of the labelled frames, in the order predict_last_frames gives them."""
    return np.concatenate([rec.stamps_ns[rec.labelled] for rec in recordings]) * 1e-9
