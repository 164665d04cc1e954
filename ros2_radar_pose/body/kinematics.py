"""Batched, differentiable forward kinematics over a kinematic tree, level by level.

Joints at the same depth do not depend on each other, so each depth is one batched step
(10 steps for HybrIK-29 instead of 29 joint-by-joint steps). Rotations are local (relative to
the parent); joint 0 is the root, which keeps its rest position (SMPL's convention) before the
translation is added.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.rotations import cached_constants


@lru_cache(maxsize=16)
def tree_levels(parents: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """((joints, their parents), ...) for depth 1, 2, ...; parents must precede children."""
    depth = [0] * len(parents)
    for joint in range(1, len(parents)):
        if not 0 <= parents[joint] < joint:
            raise ValueError("forward kinematics needs parents listed before their children")
        depth[joint] = depth[parents[joint]] + 1
    levels = []
    for level in range(1, max(depth) + 1):
        joints = tuple(j for j in range(len(parents)) if depth[j] == level)
        levels.append((joints, tuple(parents[j] for j in joints)))
    return tuple(levels)


@cached_constants(maxsize=16)
def _parent_index(parents: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.tensor([max(p, 0) for p in parents], device=device)


def rest_bones(rest_joints: torch.Tensor, parents: Sequence[int]) -> torch.Tensor:
    """Each joint's rest offset from its parent, (B, N, 3); the root's is its rest position."""
    bones = rest_joints - rest_joints.index_select(1, _parent_index(tuple(parents), rest_joints.device))
    return torch.cat([rest_joints[:, :1], bones[:, 1:]], dim=1)


def forward_kinematics(local_rotations: torch.Tensor, rest_joints: torch.Tensor,
                       parents: Sequence[int] = HYBRIK_29.parents,
                       translation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed joints and global rotations.

    ``local_rotations`` (B, R, 3, 3) for joints 0..R-1; joints R..N-1 are leaves without a
    rotation of their own. ``rest_joints`` (B, N, 3); ``translation`` (B, 3) or None.
    Returns joints (B, N, 3) and global rotations (B, R, 3, 3).
    """
    parents = tuple(parents)
    n_rot = local_rotations.shape[1]
    bones = rest_bones(rest_joints, parents)
    rotations: list[torch.Tensor | None] = [local_rotations[:, 0]] + [None] * (n_rot - 1)
    positions: list[torch.Tensor | None] = [rest_joints[:, 0]] + [None] * (len(parents) - 1)
    for joints, joint_parents in tree_levels(parents):
        parent_rot = torch.stack([rotations[p] for p in joint_parents], dim=1)        # (B, n, 3, 3)
        parent_pos = torch.stack([positions[p] for p in joint_parents], dim=1)        # (B, n, 3)
        placed = parent_pos + (parent_rot @ bones[:, list(joints), :, None])[..., 0]
        for joint, position in zip(joints, placed.unbind(1)):
            positions[joint] = position
        rotating = [k for k, joint in enumerate(joints) if joint < n_rot]
        if rotating:
            posed = parent_rot[:, rotating] @ local_rotations[:, [joints[k] for k in rotating]]
            for k, rotation in zip(rotating, posed.unbind(1)):
                rotations[joints[k]] = rotation
    joints_out = torch.stack(positions, dim=1)
    if translation is not None:
        joints_out = joints_out + translation[:, None]
    return joints_out, torch.stack(rotations, dim=1)
