"""A synthetic SMPL-format model for tests: valid shapes, a body-like skeleton, known answers.

No SMPL file can be downloaded here, so tests build one with the official layout: v_template
6890x3, shapedirs 6890x3x10, posedirs 6890x3x207, J_regressor 24x6890, weights 6890x24,
kintree_table 2x24 (root parent 2**32 - 1, as in the official files), f 13776x3. Joint j is
vertex 1000 + j (a one-hot regressor), the HybrIK leaves are their official vertices, and every
vertex is skinned to one joint, so posed vertices have exact answers.
"""
from __future__ import annotations

import numpy as np
import torch

from ros2_radar_pose.body.joint_sets import HYBRIK_29, SMPL_24
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.body.smpl_file import SMPL_LEAF_VERTICES

JOINT_VERTEX = 1000          # vertex 1000 + j is joint j


def synthetic_smpl_arrays(seed: int = 0, pose_blend: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rest = AnthropometricBody().rest_joints(torch.zeros(1, 4))[0].numpy()
    rest = rest - rest[0] + np.array([0.0, -0.2, 0.02])      # SMPL's template sits around its centre
    owner = rng.integers(0, 24, 6890)                        # the joint each vertex is skinned to
    v_template = rest[owner] + rng.normal(0, 0.04, (6890, 3))
    v_template[JOINT_VERTEX:JOINT_VERTEX + 24] = rest[:24]
    owner[JOINT_VERTEX:JOINT_VERTEX + 24] = np.arange(24)
    for leaf, vertex in zip(range(24, 29), SMPL_LEAF_VERTICES):
        v_template[vertex] = rest[leaf]
        owner[vertex] = HYBRIK_29.parents[leaf]
    shapedirs = rng.normal(0, 0.005, (6890, 3, 10))
    shapedirs[:, :, 0] = 0.05 * v_template                   # beta 0 scales the whole body by 5 %
    regressor = np.zeros((24, 6890))
    regressor[np.arange(24), JOINT_VERTEX + np.arange(24)] = 1.0
    parents = np.array(SMPL_24.parents, dtype=np.int64)
    parents[0] = 2**32 - 1
    return {
        "v_template": v_template, "shapedirs": shapedirs,
        "posedirs": rng.normal(0, 1e-3, (6890, 3, 207)) if pose_blend else np.zeros((6890, 3, 207)),
        "J_regressor": regressor, "weights": np.eye(24)[owner],
        "kintree_table": np.stack([parents, np.arange(24)]), "f": rng.integers(0, 6890, (13776, 3)),
    }
