"""A pybullet humanoid built from a body model: one link per SMPL-24 joint, spherical joints (the
toes and hands fixed to their parents, ``RIGID``).

``humanoid_urdf`` writes the URDF from a body's rest joints (HYBRIK_29, SMPL's canonical frame:
x the body's left, y up, z forward), segment masses and radii (body/models.py, anthropometric
mass fractions scaled to a body mass). Every link's frame sits on its joint with the canonical
orientation, so a link's world orientation *is* that joint's global rotation and the spherical
joints' positions are SMPL's local rotations. Collision shapes:

- a capsule along each bone, from the joint to the child that gives it its direction (the
  pelvis: across the hips; spine3: up to the neck), with the segment's radius;
- each foot as two boxes, rear foot (ankle link: heel to ball) and toes (foot link: ball to
  toe tip), flat on the sole, so standing makes four corner contacts per box.

Inertia is a solid cylinder (box for the feet) of the segment's mass along its bone. The root link
(pelvis) carries its mass at the joint so the base's pose pybullet reports is the pelvis joint's.
``Humanoid`` loads one into a pybullet client and reads and writes SMPL-24 poses.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pybullet
from scipy.spatial.transform import Rotation

from ros2_radar_pose.body.hybrik_ik import BONE_CHILD
from ros2_radar_pose.body.joint_sets import HYBRIK_29, SMPL_24

FOOT_LENGTH = 0.152          # heel to toe tip, fraction of standing height (Winter 2009)
FOOT_BREADTH = 0.055         # fraction of standing height
TOE_BOX_HEIGHT = 0.015       # fraction of standing height
HIP, KNEE = (1, 2), (4, 5)                             # HYBRIK_29 (and SMPL-24) indices, left then right
ANKLE, FOOT, TOE = (7, 8), (10, 11), (27, 28)          # HYBRIK_29 indices, left then right
SEGMENT_END = {0: None, 9: 12, **BONE_CHILD}            # the joint each segment's capsule reaches
# Toes and hands ride rigidly on their parents: twelve fewer degrees of freedom and motor rows for
# the solver (a fifth of a step's cost); the radar sees neither bend.
RIGID = (10, 11, 22, 23)
ACTUATED = tuple(j for j in range(1, 24) if j not in RIGID)


@dataclass(frozen=True, eq=False)
class BodyShape:
    """What a humanoid is built from: ``rest`` (29, 3) rest joints (HYBRIK_29, canonical frame, m),
    ``masses`` (24,) kg and ``radii`` (24,) m of the segment each SMPL joint drives."""

    rest: np.ndarray
    masses: np.ndarray
    radii: np.ndarray

    def __post_init__(self):
        shapes = (self.rest.shape, self.masses.shape, self.radii.shape)
        if shapes != ((29, 3), (24,), (24,)):
            raise ValueError(f"a body shape needs rest (29, 3), masses (24,), radii (24,); got {shapes}")
        if not (np.isfinite(self.rest).all() and (self.masses > 0).all() and (self.radii > 0).all()):
            raise ValueError("rest joints must be finite, masses and radii positive")

    @classmethod
    def of(cls, body, betas: np.ndarray | None = None, body_mass: float | None = None) -> BodyShape:
        """The shape of ``body`` (a body/models.py BodyModel) with coefficients ``betas`` (K,) (the
        average body when None) and ``body_mass`` kg (from a body-mass index of 23 when None)."""
        import torch

        betas = torch.zeros(1, body.num_betas, dtype=torch.float64) if betas is None else \
            torch.as_tensor(np.asarray(betas, dtype=np.float64))[None]
        with torch.no_grad():
            rest = body.rest_joints(betas)[0].double().numpy()
            masses = body.segment_masses(betas, body_mass)[0].double().numpy()
            radii = body.segment_radii(betas)[0].double().numpy()
        return cls(rest, masses, radii)

    @cached_property
    def soles(self) -> np.ndarray:
        """(2,) rest height (y) of each foot's sole: its lowest joint."""
        return np.array([self.rest[[ANKLE[s], FOOT[s], TOE[s]], 1].min() for s in range(2)])

    @cached_property
    def height(self) -> float:
        """Head top over the higher sole, m."""
        return float(self.rest[HYBRIK_29.index("head_top"), 1] - self.soles.max())

    @cached_property
    def clearance(self) -> np.ndarray:
        """(2, 3) rest height over its sole of each foot's ankle, ball and toe tip: how far above
        the floor those joints are when the foot stands flat."""
        return np.array([[self.rest[j, 1] - self.soles[s] for j in (ANKLE[s], FOOT[s], TOE[s])]
                         for s in range(2)])

    @property
    def mass(self) -> float:
        return float(self.masses.sum())


def _rpy_along(direction: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw that turn a shape's z axis onto ``direction``."""
    z = direction / np.linalg.norm(direction)
    axis = np.cross([0.0, 0.0, 1.0], z)
    angle = np.arctan2(np.linalg.norm(axis), z[2])
    if np.linalg.norm(axis) < 1e-9:
        axis = np.array([1.0, 0.0, 0.0])
    with warnings.catch_warnings():     # a bone along y is a gimbal lock of these angles: any solution does
        warnings.simplefilter("ignore", UserWarning)
        return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_euler("xyz")


def _origin(xyz, rpy=(0.0, 0.0, 0.0)) -> str:
    return f'<origin xyz="{xyz[0]:.6f} {xyz[1]:.6f} {xyz[2]:.6f}" rpy="{rpy[0]:.6f} {rpy[1]:.6f} {rpy[2]:.6f}"/>'


def _inertial(mass: float, centre: np.ndarray, inertia: np.ndarray) -> str:
    """An inertial element whose axes are the link's. pybullet expresses a spherical joint's rotation
    between the links' inertial frames, and turns those onto the principal axes of a full tensor,
    so only the diagonal is kept: in the T-pose every bone runs close to a canonical axis."""
    i = np.diag(inertia)
    return (f'<inertial>{_origin(centre)}<mass value="{mass:.6f}"/><inertia ixx="{i[0]:.8f}" ixy="0" '
            f'ixz="0" iyy="{i[1]:.8f}" iyz="0" izz="{i[2]:.8f}"/></inertial>')


def _foot_boxes(shape: BodyShape, side: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(centre, size) of the rear-foot box in the ankle link's frame and of the toe box in the foot
    link's frame."""
    rest, height = shape.rest, shape.height
    ankle, ball, toe = rest[ANKLE[side]], rest[FOOT[side]], rest[TOE[side]]
    sole, breadth = shape.soles[side], FOOT_BREADTH * height
    heel_z = toe[2] - FOOT_LENGTH * height
    top = max(ankle[1] - 0.5 * shape.radii[ANKLE[side]], sole + 0.02)
    rear_size = np.array([breadth, top - sole, ball[2] - heel_z])
    rear_centre = np.array([0.5 * (ankle[0] + ball[0]), 0.5 * (sole + top), 0.5 * (heel_z + ball[2])]) - ankle
    toe_top = sole + TOE_BOX_HEIGHT * height
    toe_size = np.array([breadth, toe_top - sole, max(toe[2] - ball[2], 0.01)])
    toe_centre = np.array([0.5 * (ball[0] + toe[0]), 0.5 * (sole + toe_top), 0.5 * (ball[2] + toe[2])]) - ball
    return (rear_centre, rear_size), (toe_centre, toe_size)


def humanoid_urdf(shape: BodyShape, name: str = "radar_pose_humanoid") -> str:
    """The URDF text of ``shape``'s humanoid (links named after SMPL-24 joints)."""
    rest, parents = shape.rest, HYBRIK_29.parents
    feet = {}
    for side in range(2):
        feet[ANKLE[side]], feet[FOOT[side]] = _foot_boxes(shape, side)
    parts = [f'<?xml version="1.0"?>\n<robot name="{name}">']
    for joint, joint_name in enumerate(SMPL_24.names):
        mass, radius = float(shape.masses[joint]), float(shape.radii[joint])
        if joint in feet:
            centre, size = feet[joint]
            geometry = f'<box size="{size[0]:.6f} {size[1]:.6f} {size[2]:.6f}"/>'
            origin = _origin(centre)
            sx, sy, sz = size ** 2
            inertia = np.diag([sy + sz, sx + sz, sx + sy]) * mass / 12
        else:
            if joint == 0:          # across the hips
                start, end = rest[1] - rest[0], rest[2] - rest[0]
            else:
                start, end = np.zeros(3), rest[SEGMENT_END[joint]] - rest[joint]
            length = float(np.linalg.norm(end - start))
            rpy = _rpy_along(end - start)
            centre = 0.5 * (start + end)
            origin = _origin(centre, rpy)
            cylinder = max(length - radius, 1e-3)
            geometry = f'<capsule radius="{radius:.6f}" length="{cylinder:.6f}"/>'
            across, along = mass * (3 * radius ** 2 + length ** 2) / 12, mass * radius ** 2 / 2
            turn = Rotation.from_euler("xyz", rpy).as_matrix()
            inertia = turn @ np.diag([across, across, along]) @ turn.T
            if joint == 0:   # the root's centre of mass on its joint: pybullet reports the base's pose there
                centre = np.zeros(3)
        parts.append(f'<link name="{joint_name}">{_inertial(mass, centre, inertia)}'
                     f'<collision>{origin}<geometry>{geometry}</geometry></collision></link>')
        if joint > 0:
            parent = parents[joint]
            kind = "fixed" if joint in RIGID else "spherical"
            parts.append(f'<joint name="{joint_name}_joint" type="{kind}"><parent link="{SMPL_24.names[parent]}"/>'
                         f'<child link="{joint_name}"/>{_origin(rest[joint] - rest[parent])}'
                         '<axis xyz="0 0 1"/></joint>')
    parts.append("</robot>")
    return "\n".join(parts)


class Humanoid:
    """``shape``'s humanoid in pybullet client ``client``. Poses are SMPL-24: the root's world
    position (3,) and orientation, and local rotations, as xyzw quaternions."""

    def __init__(self, client: int, shape: BodyShape, friction: float = 1.0):
        self.client, self.shape = client, shape
        with tempfile.NamedTemporaryFile("w", suffix=".urdf", delete=False) as file:
            file.write(humanoid_urdf(shape))
        try:
            self.id = pybullet.loadURDF(file.name, flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
                                        physicsClientId=client)
        finally:
            os.unlink(file.name)
        by_name = {pybullet.getJointInfo(self.id, i, physicsClientId=client)[12].decode(): i
                   for i in range(pybullet.getNumJoints(self.id, physicsClientId=client))}
        self.links = [by_name[name] for name in SMPL_24.names[1:]]          # pybullet index of joints 1..23
        self.actuated = [by_name[SMPL_24.names[j]] for j in ACTUATED]       # those of the spherical joints
        for link in [-1, *self.links]:
            pybullet.changeDynamics(self.id, link, lateralFriction=friction, linearDamping=0.0, angularDamping=0.0,
                                    physicsClientId=client)
        self.foot_links = tuple(self.links[j - 1] for j in FOOT)

    def reset(self, root_position: np.ndarray, root_quaternion: np.ndarray, local_quaternions: np.ndarray) -> None:
        """Teleport to a pose at rest: ``local_quaternions`` (23, 4) for joints 1..23 (the rigid
        joints' are ignored)."""
        c = self.client
        pybullet.resetBasePositionAndOrientation(self.id, root_position.tolist(), root_quaternion.tolist(),
                                                 physicsClientId=c)
        pybullet.resetBaseVelocity(self.id, [0.0] * 3, [0.0] * 3, physicsClientId=c)
        pybullet.resetJointStatesMultiDof(self.id, self.actuated, local_quaternions[np.array(ACTUATED) - 1].tolist(),
                                          targetVelocities=[[0.0] * 3] * len(self.actuated), physicsClientId=c)

    def root_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Root position (3,), quaternion (4,), linear and angular velocity (3,) in the world."""
        position, quaternion = pybullet.getBasePositionAndOrientation(self.id, physicsClientId=self.client)
        linear, angular = pybullet.getBaseVelocity(self.id, physicsClientId=self.client)
        return np.array(position), np.array(quaternion), np.array(linear), np.array(angular)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """World positions (24, 3) and orientations (24, 4) of the SMPL-24 joints."""
        position, quaternion = pybullet.getBasePositionAndOrientation(self.id, physicsClientId=self.client)
        states = pybullet.getLinkStates(self.id, self.links, computeForwardKinematics=True,
                                        physicsClientId=self.client)
        positions = np.array([position] + [s[4] for s in states])
        quaternions = np.array([quaternion] + [s[5] for s in states])
        return positions, quaternions

    def remove(self) -> None:
        pybullet.removeBody(self.id, physicsClientId=self.client)
