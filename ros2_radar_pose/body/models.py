"""Body models behind one interface: rest joints from shape coefficients, posed joints from local
rotations, a mesh where the model has one, and masses and radii for physics.

- ``AnthropometricBody``: built in, needs no licensed file. Rest joints from published body
  proportions (body/anthropometry.py) as a function of four shape coefficients.
- ``SMPLBody``: SMPL through the ``smplx`` package, from a model file the user brings.

``load_body_model(path)`` picks SMPL when given a file, the built-in body otherwise. All models
give rest joints in HYBRIK_29 order, in SMPL's canonical frame (x: the body's left, y: up,
z: forward), in metres, with the T-pose at zero rotation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ros2_radar_pose.body import anthropometry as anthro
from ros2_radar_pose.body.joint_sets import HYBRIK_29, SMPL_24, JointSet
from ros2_radar_pose.body.kinematics import forward_kinematics
from ros2_radar_pose.body.smpl_file import SMPL_LEAF_VERTICES, SMPLFileError, load_smpl_arrays


@dataclass
class BodyPose:
    """``joints`` (B, 29, 3), ``global_rotations`` (B, 24, 3, 3), ``vertices`` (B, V, 3) or None."""

    joints: torch.Tensor
    global_rotations: torch.Tensor
    vertices: torch.Tensor | None = None


class BodyModel(nn.Module):
    """The interface every body model implements."""

    joint_set: JointSet = HYBRIK_29
    num_betas: int
    has_mesh: bool = False

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """Rest joints (B, 29, 3) for shape coefficients ``betas`` (B, K); missing coefficients are
        zero, extra ones are ignored."""
        raise NotImplementedError

    def forward(self, betas: torch.Tensor, local_rotations: torch.Tensor,
                translation: torch.Tensor | None = None) -> BodyPose:
        """Pose the body: ``local_rotations`` (B, 24, 3, 3), ``translation`` (B, 3) or None."""
        joints, global_rotations = forward_kinematics(local_rotations, self.rest_joints(betas),
                                                      self.joint_set.parents, translation)
        return BodyPose(joints, global_rotations)

    def height(self, betas: torch.Tensor) -> torch.Tensor:
        """Standing height (B,) in metres: head top over the lowest rest joint."""
        rest = self.rest_joints(betas)
        return rest[:, HYBRIK_29.index("head_top"), 1] - rest[..., 1].min(dim=1).values

    def segment_masses(self, betas: torch.Tensor, body_mass: torch.Tensor | float | None = None) -> torch.Tensor:
        """Mass (B, 24) in kg of the segment each SMPL joint drives; ``body_mass`` (kg) defaults to
        a body-mass index of 23 at the model's height."""
        height = self.height(betas)
        mass = anthro.BODY_MASS_INDEX * height ** 2 if body_mass is None else torch.as_tensor(
            body_mass, dtype=height.dtype, device=height.device).expand_as(height)
        fractions = height.new_tensor([anthro.MASS_FRACTIONS[n] for n in SMPL_24.names])
        return mass[:, None] * fractions

    def segment_radii(self, betas: torch.Tensor) -> torch.Tensor:
        """Radius (B, 24) in metres of the segment each SMPL joint drives."""
        height = self.height(betas)
        return height[:, None] * height.new_tensor([anthro.RADIUS_FRACTIONS[n] for n in SMPL_24.names])

    def vertices(self, betas: torch.Tensor, local_rotations: torch.Tensor,
                 translation: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no mesh; give a SMPL model file for one")


def _padded(betas: torch.Tensor, count: int) -> torch.Tensor:
    betas = betas[:, :count]
    return torch.nn.functional.pad(betas, (0, count - betas.shape[1]))


class AnthropometricBody(BodyModel):
    """A skeleton from published proportions; no licensed file needed.

    Shape coefficients, each in standard units (0 = average, ±1 = about one standard deviation):
    0 height (1.70 m + 0.10 m per unit), 1 breadth (shoulders, hips and girth, 8 % per unit),
    2 leg length relative to the trunk (4 % per unit, height kept), 3 arm length (5 % per unit).
    The rest pose stands on the floor (y = 0), feet under the hips, arms out (T-pose).
    """

    num_betas = 4

    def __init__(self):
        super().__init__()
        table = []
        for name in HYBRIK_29.names:       # the table holds the left side; the right mirrors it
            x, y, z = anthro.REST_FRACTIONS[name.replace("right_", "left_")]
            table.append((-x if name.startswith("right_") else x, y, z))
        self.register_buffer("unit_rest", torch.tensor(table, dtype=torch.float64), persistent=False)
        groups = {
            "trunk_width": ["left_hip", "right_hip", "left_collar", "right_collar", "left_shoulder", "right_shoulder"],
            "arm": [n for n in HYBRIK_29.names if any(p in n for p in ("elbow", "wrist", "hand", "middle_tip"))],
            "leg": [n for n in HYBRIK_29.names if any(p in n for p in ("knee", "ankle", "foot", "toe"))],
        }
        for group, names in groups.items():
            mask = torch.zeros(len(HYBRIK_29), dtype=torch.bool)
            mask[[HYBRIK_29.index(n) for n in names]] = True
            self.register_buffer(f"{group}_mask", mask, persistent=False)
        shoulder_of = [HYBRIK_29.index(("left_" if n.startswith("left_") else "right_") + "shoulder")
                       if self.arm_mask[i] else i for i, n in enumerate(HYBRIK_29.names)]
        hip_of = [HYBRIK_29.index(("left_" if n.startswith("left_") else "right_") + "hip")
                  if self.leg_mask[i] else i for i, n in enumerate(HYBRIK_29.names)]
        self.register_buffer("shoulder_of", torch.tensor(shoulder_of), persistent=False)
        self.register_buffer("hip_of", torch.tensor(hip_of), persistent=False)

    def _factors(self, betas: torch.Tensor):
        b = _padded(betas, self.num_betas).to(self.unit_rest.dtype)
        height = (anthro.DEFAULT_HEIGHT + 0.10 * b[:, 0]).clamp(1.0, 2.3)
        return height, 1 + 0.08 * b[:, 1], 1 + 0.04 * b[:, 2], 1 + 0.05 * b[:, 3]

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        height, breadth, legs, arms = self._factors(betas)
        unit = self.unit_rest.expand(len(height), -1, -1)                         # (B, 29, 3), H = 1
        hip_y = unit[0, HYBRIK_29.index("left_hip"), 1]
        ankle_y = unit[0, HYBRIK_29.index("left_ankle"), 1]
        x, y = unit[..., 0], unit[..., 1]
        # Breadth widens the trunk; arms and legs move out with their shoulder or hip.
        widen = (breadth - 1)[:, None]
        x = x + widen * torch.where(self.trunk_width_mask, x, torch.zeros_like(x))
        x = x + widen * torch.where(self.arm_mask, unit[:, self.shoulder_of, 0], torch.zeros_like(x))
        x = x + widen * torch.where(self.leg_mask, unit[:, self.hip_of, 0], torch.zeros_like(x))
        # Legs grow above the ankle; the trunk shrinks to keep the head top at 1.
        new_hip_y = ankle_y + (hip_y - ankle_y) * legs[:, None]
        leg_y = ankle_y + (y - ankle_y).clamp_min(0) * legs[:, None] + (y - ankle_y).clamp_max(0)
        y = torch.where(self.leg_mask, leg_y, new_hip_y + (y - hip_y) * (1 - new_hip_y) / (1 - hip_y))
        rest = torch.stack([x, y, unit[..., 2]], dim=-1)
        # Arms grow from the shoulder.
        shoulder = rest[:, self.shoulder_of]
        rest = torch.where(self.arm_mask[:, None], shoulder + (rest - shoulder) * arms[:, None, None], rest)
        return rest * height[:, None, None]

    def segment_radii(self, betas: torch.Tensor) -> torch.Tensor:
        _, breadth, _, _ = self._factors(betas)
        return super().segment_radii(betas) * breadth[:, None]

    def segment_masses(self, betas: torch.Tensor, body_mass: torch.Tensor | float | None = None) -> torch.Tensor:
        masses = super().segment_masses(betas, body_mass)
        if body_mass is None:        # a broader body of the same height is heavier
            masses = masses * self._factors(betas)[1][:, None] ** 2
        return masses


class SMPLBody(BodyModel):
    """SMPL (Loper et al., 2015) through ``smplx``, from the user's model file (.pkl or .npz)."""

    has_mesh = True

    def __init__(self, model_path: str | Path, num_betas: int = 10):
        super().__init__()
        import smplx
        from smplx.utils import Struct

        arrays = load_smpl_arrays(model_path)
        if arrays["shapedirs"].shape[2] < num_betas:
            raise SMPLFileError(f"{model_path} has {arrays['shapedirs'].shape[2]} shape components, "
                                f"{num_betas} were asked for")
        self.num_betas = num_betas
        self.smpl = smplx.SMPL(model_path=str(model_path), data_struct=Struct(**arrays), num_betas=num_betas,
                               create_betas=False, create_global_orient=False, create_body_pose=False,
                               create_transl=False, dtype=torch.float64)
        self.register_buffer("leaf_vertices", torch.tensor(SMPL_LEAF_VERTICES), persistent=False)

    def _shaped(self, betas: torch.Tensor) -> torch.Tensor:
        from smplx.lbs import blend_shapes

        betas = _padded(betas, self.num_betas).to(self.smpl.v_template.dtype)
        return self.smpl.v_template + blend_shapes(betas, self.smpl.shapedirs)

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        shaped = self._shaped(betas)                                                # (B, 6890, 3)
        joints = torch.einsum("jv,bvd->bjd", self.smpl.J_regressor, shaped)
        return torch.cat([joints, shaped[:, self.leaf_vertices]], dim=1)

    def height(self, betas: torch.Tensor) -> torch.Tensor:
        vertical = self._shaped(betas)[..., 1]
        return vertical.max(dim=1).values - vertical.min(dim=1).values

    def vertices(self, betas: torch.Tensor, local_rotations: torch.Tensor,
                 translation: torch.Tensor | None = None) -> torch.Tensor:
        """Mesh vertices (B, 6890, 3) by SMPL's linear blend skinning, pose blend shapes included."""
        from smplx.lbs import lbs

        dtype = self.smpl.v_template.dtype
        vertices, _ = lbs(_padded(betas, self.num_betas).to(dtype), local_rotations.to(dtype),
                          self.smpl.v_template, self.smpl.shapedirs, self.smpl.posedirs, self.smpl.J_regressor,
                          self.smpl.parents, self.smpl.lbs_weights, pose2rot=False)
        return vertices if translation is None else vertices + translation[:, None].to(dtype)

    def forward(self, betas: torch.Tensor, local_rotations: torch.Tensor,
                translation: torch.Tensor | None = None) -> BodyPose:
        pose = super().forward(betas, local_rotations, translation)
        pose.vertices = self.vertices(betas, local_rotations, translation)
        return pose


def load_body_model(smpl_model_path: str | Path | None = None) -> BodyModel:
    """SMPL from ``smpl_model_path`` when given (SMPLFileError if it cannot be used), else the
    built-in anthropometric body."""
    if smpl_model_path:
        return SMPLBody(smpl_model_path)
    return AnthropometricBody()
