"""The training loss: L1 on joint positions, plus bone-length and velocity consistency, plus the
twist of each bone where labels carry orientations.

Every term averages over the labelled entries only: a frame without a label, a joint a label
lacks (NaN) or a frame pair with one side unlabelled contributes nothing, rather than a zero that
would pull predictions toward the origin.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ros2_radar_pose.body.joint_sets import HYBRIK_29, JointSet
from ros2_radar_pose.student.model import StudentPose


@dataclass(frozen=True)
class LossWeights:
    bone: float = 0.5
    velocity: float = 0.5
    twist: float = 0.1
    betas: float = 1e-3        # shape is not labelled: keep β near the average body
    newest: float = 0.0        # extra joint loss on each window's newest frame, the one streaming predicts


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    valid = valid.to(values.dtype)
    return (values * valid).sum() / valid.sum().clamp(min=1.0)


def pose_losses(pose: StudentPose, batch: dict[str, torch.Tensor], joint_set: JointSet,
                weights: LossWeights = LossWeights()) -> dict[str, torch.Tensor]:
    """Loss terms and their weighted ``total`` (scalars). ``batch``: ``targets`` (B, W, K, 3) with NaN
    where unknown, ``labelled`` (B, W), optionally ``twist`` (B, W, 23, 2); K is 29 (HybrIK) for a
    rotation-predicting student, else the joint set's size."""
    targets = batch["targets"]
    predicted = pose.joints29 if targets.shape[2] == len(HYBRIK_29) and pose.joints29 is not None else pose.joints
    if predicted.shape != targets.shape:
        raise ValueError(f"targets {tuple(targets.shape)} do not match predictions {tuple(predicted.shape)}")
    bones = (HYBRIK_29 if predicted.shape[2] == len(HYBRIK_29) else joint_set).bones
    known = batch["labelled"][..., None] & torch.isfinite(targets).all(-1)              # (B, W, K)
    targets = torch.nan_to_num(targets)
    predicted = predicted.float()
    joint_error = (predicted - targets).abs().mean(-1)                                 # (B, W, K)
    terms = {"joints": _masked_mean(joint_error, known)}

    parent, child = (torch.tensor(side, device=targets.device) for side in zip(*bones))

    def lengths(x):
        return torch.linalg.vector_norm(x[:, :, child] - x[:, :, parent], dim=-1)
    both_ends = known[:, :, child] & known[:, :, parent]
    terms["bones"] = _masked_mean((lengths(predicted) - lengths(targets)).abs(), both_ends)

    moving = known[:, 1:] & known[:, :-1]
    step = (predicted[:, 1:] - predicted[:, :-1]) - (targets[:, 1:] - targets[:, :-1])
    terms["velocity"] = _masked_mean(step.abs().mean(-1), moving)
    total = terms["joints"] + weights.bone * terms["bones"] + weights.velocity * terms["velocity"]
    if weights.newest:
        # Every frame of a window is trained, but streaming reads the newest alone, which sees no
        # frame after it: this term spends more of the model on that frame.
        terms["newest"] = _masked_mean(joint_error[:, -1], known[:, -1])
        total = total + weights.newest * terms["newest"]
    if pose.twist is not None and "twist" in batch:
        twist_known = batch["labelled"][..., None] & torch.isfinite(batch["twist"]).all(-1)
        error = (pose.twist.float() - torch.nan_to_num(batch["twist"])).square().sum(-1)
        terms["twist"] = _masked_mean(error, twist_known)
        total = total + weights.twist * terms["twist"]
    if pose.betas is not None:
        terms["betas"] = pose.betas.float().square().mean()
        total = total + weights.betas * terms["betas"]
    terms["total"] = total
    return terms
