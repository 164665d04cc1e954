"""A straightforward HybrIK IK: one joint at a time, each batched over frames, Rodrigues written
out, Procrustes from body/rotations.py, no degenerate-input handling. The way the official code is
written; the baseline of bench/ik.py and an oracle for the tests (same answers as body/hybrik_ik.py
on well-posed input)."""
from __future__ import annotations

import torch

from ros2_radar_pose.body.hybrik_ik import BONE_CHILD, ROOT_CHILDREN, SPINE3, SPINE3_CHILDREN
from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.rotations import closest_rotation


def _rodrigues(axis: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(B, 3) unit axis, (B,) cos and sin -> (B, 3, 3)."""
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return eye + sin[:, None, None] * k + (1 - cos)[:, None, None] * (k @ k)


def reference_inverse_kinematics(targets: torch.Tensor, twist: torch.Tensor, rest_joints: torch.Tensor,
                                 adaptive: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations (B, 24, 3, 3) and posed joints (B, 29, 3), joint by joint."""
    parents = HYBRIK_29.parents
    translation = targets[:, 0] - rest_joints[:, 0]
    targets = targets - translation[:, None]
    bones = {j: rest_joints[:, j] - rest_joints[:, parents[j]] for j in range(1, 29)}
    twist = twist / twist.norm(dim=-1, keepdim=True)

    def kabsch(rest_vectors, target_vectors):
        return closest_rotation(sum(t[:, :, None] * r[:, None, :] for r, t in zip(rest_vectors, target_vectors)))

    root = kabsch([bones[c] for c in ROOT_CHILDREN], [targets[:, c] - targets[:, 0] for c in ROOT_CHILDREN])
    local, chain, positions = {0: root}, {0: root}, {0: rest_joints[:, 0]}
    for joint in range(1, 29):
        parent = parents[joint]
        positions[joint] = positions[parent] + (chain[parent] @ bones[joint][..., None])[..., 0]
        if joint >= 24:
            continue
        origin = positions[joint] if adaptive else targets[:, joint]
        if joint == SPINE3:
            rotation = kabsch([bones[c] for c in SPINE3_CHILDREN],
                              [(chain[parent].transpose(1, 2) @ (targets[:, c] - origin)[..., None])[..., 0]
                               for c in SPINE3_CHILDREN])
        else:
            child = BONE_CHILD[joint]
            aim = (chain[parent].transpose(1, 2) @ (targets[:, child] - origin)[..., None])[..., 0]
            rest = bones[child] / bones[child].norm(dim=-1, keepdim=True)
            aim = aim / aim.norm(dim=-1, keepdim=True)
            axis = torch.cross(rest, aim, dim=-1)
            sin = axis.norm(dim=-1)
            cos = (rest * aim).sum(-1)
            swing = _rodrigues(axis / (sin[:, None] + 1e-12), cos, sin)
            rotation = swing @ _rodrigues(rest, twist[:, joint - 1, 0], twist[:, joint - 1, 1])
        local[joint] = rotation
        chain[joint] = chain[parent] @ rotation
    joints = torch.stack([positions[j] for j in range(29)], dim=1) + translation[:, None]
    return torch.stack([local[j] for j in range(24)], dim=1), joints
