"""PhysCap-style physics refinement: a simulated humanoid follows the estimated skeleton.

Per frame (Shimada et al., "PhysCap", SIGGRAPH Asia 2020, in spirit: kinematic estimate ->
contact detection -> physics that follows the estimate):

1. **Target.** The estimate (SMPL-24 positions and global orientations, in a z-up frame whose
   floor is z = 0; ``FloorFrame`` maps the radar frame there) is smoothed (the 1€ filter per
   joint, physics/filters.py: the kinematic stage's filter) and goes
   through HybrIK's IK on the humanoid's own rest skeleton (body/hybrik_ik.py): local rotations
   whose bones point at the estimated joints, with the estimate's twists. No target rotation turns
   faster than ``max_joint_speed``: a learned estimate's twists can flip from frame to frame.
   A foot planted in the last frame that the estimate puts under the floor is lifted onto it for
   ``bend_knees`` of its depth, its knee bending to keep the leg's bone lengths; the root's target
   rises for the rest (``floor_root``). Which one is wrong, the root's height or the legs' bend,
   the estimate cannot tell: a learned one sees a squat as a straight-legged body going down,
   while noise on the root lowers the whole body. The default bends the knees for all of it: the
   shipped student's root is too high, not too low (by 9 cm on the physics bench's motions), so
   raising it made the refined pose worse.
2. **Contacts.** Foot contact from the target's sole height and foot speed, with hysteresis
   (physics/contacts.py); a simulated foot that touches the floor lands as soon as the estimate's
   foot is low (``touch_lands``), without waiting for the noisy estimate to slow down.
3. **Physics**, sub-stepped at ``physics_hz`` in pybullet with gravity and a floor with friction:
   every joint tracks its target rotation with pybullet's constraint-based spherical motor
   (``joint_gain``: the share of the error it removes per step, ``joint_torque`` per kg of body
   mass its bound). The motor is implicit, so it stays stable at the stiffness a light hand on a
   heavy arm needs; explicit PD torques at 240 Hz are not (they were tried: the twist axes of the
   limbs, with a hundredth of the inertia across them, blow up);
   the unactuated root is driven by a PD *residual* force and torque towards the target root,
   each bounded (``root_force`` in body weights, ``root_torque``), so the body follows the
   estimate without falling while the floor keeps it above the floor; a foot that comes down is
   pinned where it lands (a point constraint on the ball of the foot at the floor, bounded by
   ``pin_force`` body weights) until it lifts, so a planted foot does not slide.
4. **Reset.** A first frame, a non-finite target, a root jump over ``reset_jump`` or a gap over
   ``reset_gap_s`` puts the humanoid on the target at rest (``TrackedFrame.reset``); a
   simulation that blows up (non-finite state) does the same.

``PhysicsTracker.step`` returns the humanoid's joints and orientations in the same frame the
target came in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pybullet
import torch
from scipy.spatial.transform import Rotation

from ros2_radar_pose.body.hybrik_ik import inverse_kinematics, skeleton_targets
from ros2_radar_pose.physics.contacts import ContactConfig, ContactDetector, sole_heights
from ros2_radar_pose.physics.filters import OneEuroConfig, OneEuroFilter
from ros2_radar_pose.physics.humanoid import ACTUATED, ANKLE, FOOT, HIP, KNEE, TOE, BodyShape, Humanoid

GRAVITY = 9.81
DEEPEST_SQUAT = 0.3     # hip over ankle in a deep squat, share of thigh + shank: how far a knee bends


@dataclass(frozen=True)
class FloorFrame:
    """Where the floor is, from the radar's mount: the radar frame's pose in a z-up frame whose
    floor is z = 0 (REP-103; ``translation`` (3,) m, ``rpy`` (3,) rad, as the ``world`` ->
    radar transform on ``/tf_static`` gives it)."""

    translation: tuple[float, float, float] = (0.0, 0.0, 1.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @cached_property
    def rotation(self) -> np.ndarray:
        return Rotation.from_euler("xyz", self.rpy).as_matrix()

    def to_floor(self, positions: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Radar-frame positions (..., 3) and rotation matrices (..., 3, 3) -> floor frame."""
        r = self.rotation
        return positions @ r.T + np.asarray(self.translation), r @ rotations

    def from_floor(self, positions: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.rotation
        return (positions - np.asarray(self.translation)) @ r, r.T @ rotations


@dataclass(frozen=True)
class TrackerConfig:
    physics_hz: float = 200.0        # fixed physics rate; each frame runs round(dt * physics_hz) steps
    max_substeps: int = 48           # a longer gap is simulated as this many steps
    solver_iterations: int = 20
    contact_erp: float = 1.0         # share of a penetration corrected per step (pybullet's 0.2 lets feet sink)
    joint_gain: float = 1.0          # pybullet motor position gain: share of the error removed per step
    joint_damping: float = 1.0       # pybullet motor velocity gain
    joint_torque: float = 5.0        # N m per kg of body mass, each joint's torque bound
    root_hz: float = 4.0             # natural frequency of the root's residual PD
    root_damping: float = 1.0        # its damping ratio
    root_force: float = 3.0          # body weights, bound of the residual force
    root_torque: float = 3.0         # N m per kg of body mass, bound of the residual torque
    pin_force: float = 2.0           # body weights, bound of a planted foot's pin
    touch_lands: bool = True         # a simulated foot touching the floor lands without the estimate slowing
    anchor_prior: float = 20.0       # frames' weight of the landing place in a planted foot's running mean
    floor_root: bool = True          # raise the root's target so the estimate's planted feet are not under the floor
    bend_knees: float = 1.0          # share of a planted foot's depth under the floor its bent knee takes up
    friction: float = 1.0
    reset_jump: float = 0.5          # m, a root jump between frames that resets
    reset_gap_s: float = 1.0         # s without a frame that resets
    max_joint_speed: float = 8.0     # rad/s, fastest a target joint rotation may turn (flips of the estimate's)
    contacts: ContactConfig = field(default_factory=ContactConfig)
    smoothing: OneEuroConfig = field(default_factory=OneEuroConfig)

    def __post_init__(self):
        positive = ("physics_hz", "joint_gain", "joint_torque", "root_hz", "root_force", "root_torque",
                    "reset_jump", "reset_gap_s", "max_joint_speed")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if not 0 < self.contact_erp <= 1:
            raise ValueError(f"contact_erp must be in (0, 1], got {self.contact_erp}")
        if not 0 <= self.bend_knees <= 1:
            raise ValueError(f"bend_knees must be in [0, 1], got {self.bend_knees}")
        for name in ("joint_damping", "root_damping", "pin_force", "anchor_prior", "friction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if self.max_substeps < 1 or self.solver_iterations < 1:
            raise ValueError("max_substeps and solver_iterations must be >= 1")


@dataclass
class TrackedFrame:
    """``positions`` (24, 3) and ``rotations`` (24, 3, 3) of the simulated body, in the target's
    frame; ``contacts`` (2,) bool, feet pinned (left, right); ``reset`` True when this frame put the
    body on the target instead of simulating; ``substeps`` physics steps taken."""

    positions: np.ndarray
    rotations: np.ndarray
    contacts: np.ndarray
    reset: bool
    substeps: int


def _rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) of target * current^-1, from xyzw quaternions (4,)."""
    x1, y1, z1, w1 = target
    x2, y2, z2, w2 = -current[0], -current[1], -current[2], current[3]
    w = w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2
    v = np.array([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                  w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                  w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])
    if w < 0:                      # the short way round
        w, v = -w, -v
    norm = math.sqrt(float(v @ v))
    return v * (2 * math.atan2(norm, w) / norm) if norm > 1e-12 else 2 * v


def _turned_towards(current: np.ndarray, target: np.ndarray, max_angle: float) -> np.ndarray:
    """Rotations (J, 3, 3) from ``current`` towards ``target`` (both (J, 3, 3)), each by at most
    ``max_angle`` rad. A radar student's twists can flip by up to 180 degrees from one frame to the
    next (spine3's, whose three children are nearly in line, most of all); tracked as they come,
    the flips whip the limbs and, through them, throw the whole body."""
    step = Rotation.from_matrix(target @ current.transpose(0, 2, 1)).as_rotvec()
    angle = np.linalg.norm(step, axis=-1, keepdims=True)
    if (angle <= max_angle).all():
        return target
    step *= np.minimum(1.0, max_angle / np.maximum(angle, 1e-12))
    return Rotation.from_rotvec(step).as_matrix() @ current


def _two_bone_knee(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, toes: np.ndarray, thigh: float,
                   shank: float) -> np.ndarray:
    """Where a knee (3,) goes so that bones of lengths ``thigh`` and ``shank`` join ``hip`` to
    ``ankle`` (both (3,)), bending the way ``knee`` bends now (a straight leg: towards ``toes``
    (3,), the way the foot points)."""
    reach = ankle - hip
    length = float(np.linalg.norm(reach))
    if length < 1e-6:
        return knee
    axis = reach / length
    length = min(max(length, abs(thigh - shank) + 1e-6), thigh + shank - 1e-6)
    bend = (knee - hip) - ((knee - hip) @ axis) * axis
    if np.linalg.norm(bend) < 1e-6:                    # knees go over the toes
        bend = toes - (toes @ axis) * axis
    bend /= np.linalg.norm(bend)
    along = (thigh ** 2 - shank ** 2 + length ** 2) / (2 * length)
    return hip + along * axis + math.sqrt(max(thigh ** 2 - along ** 2, 0.0)) * bend


def _quaternions(matrices: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(matrices).as_quat()


class PhysicsTracker:
    """A humanoid of ``shape`` in its own pybullet world, following targets frame by frame."""

    def __init__(self, shape: BodyShape, config: TrackerConfig | None = None, floor: FloorFrame | None = None):
        self.config = config or TrackerConfig()
        self.floor = floor or FloorFrame()
        self.client = pybullet.connect(pybullet.DIRECT)
        c = self.client
        pybullet.setGravity(0.0, 0.0, -GRAVITY, physicsClientId=c)
        pybullet.setTimeStep(1.0 / self.config.physics_hz, physicsClientId=c)
        pybullet.setPhysicsEngineParameter(numSolverIterations=self.config.solver_iterations,
                                           contactERP=self.config.contact_erp, physicsClientId=c)
        plane = pybullet.createCollisionShape(pybullet.GEOM_PLANE, physicsClientId=c)
        self.plane = pybullet.createMultiBody(0.0, plane, physicsClientId=c)
        pybullet.changeDynamics(self.plane, -1, lateralFriction=self.config.friction, physicsClientId=c)
        self.detector = ContactDetector(self.config.contacts)
        self.humanoid: Humanoid | None = None
        self.set_shape(shape)

    def set_shape(self, shape: BodyShape) -> None:
        """Rebuild the humanoid for another body (β or mass changed); the next frame resets."""
        if self.humanoid is not None:
            self._unpin_all()
            self.humanoid.remove()
        self.shape = shape
        self.humanoid = Humanoid(self.client, shape, self.config.friction)
        self._rest = torch.as_tensor(shape.rest, dtype=torch.float64)[None]
        weight = shape.mass * GRAVITY
        self._motor_forces = [[self.config.joint_torque * shape.mass] * 3] * len(self.humanoid.actuated)
        self._max_force, self._max_torque = self.config.root_force * weight, self.config.root_torque * shape.mass
        self._pin_force = self.config.pin_force * weight
        # the body's inertia about its root, roughly: its mass at a quarter of its height
        self._inertia = shape.mass * (0.25 * shape.height) ** 2
        # the ball of each foot, on the sole, from the foot link's centre of mass (pybullet's constraint frame)
        centres = [np.array(pybullet.getDynamicsInfo(self.humanoid.id, link, physicsClientId=self.client)[3])
                   for link in self.humanoid.foot_links]
        self._ball_sole = [np.array([0.0, shape.soles[s] - shape.rest[FOOT[s], 1], 0.0]) - centres[s]
                           for s in range(2)]
        rest = shape.rest
        self._leg_lengths = [(float(np.linalg.norm(rest[KNEE[s]] - rest[HIP[s]])),
                              float(np.linalg.norm(rest[ANKLE[s]] - rest[KNEE[s]]))) for s in range(2)]
        self._pins: list[int | None] = [None, None]
        self._anchors, self._planted = [np.zeros(3), np.zeros(3)], [0, 0]
        self._previous: tuple[np.ndarray, np.ndarray, float] | None = None
        self._filter = OneEuroFilter(self.config.smoothing)

    def close(self) -> None:
        if self.client is not None:
            pybullet.disconnect(self.client)
            self.client = None

    def __enter__(self) -> PhysicsTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one frame ------------------------------------------------------------------------

    def targets(self, positions: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Floor-frame target: (24, 3, 3) local rotations on this humanoid's skeleton (the root's
        is its global rotation) and the (29, 3) joints they give, from floor-frame SMPL-24
        ``positions`` (24, 3) and global ``rotations`` (24, 3, 3)."""
        with torch.inference_mode():
            targets, twist = skeleton_targets(torch.as_tensor(positions, dtype=torch.float64)[None],
                                              torch.as_tensor(rotations, dtype=torch.float64)[None], self._rest)
            solution = inverse_kinematics(targets, twist, self._rest)
        return solution.local_rotations[0].numpy(), solution.joints[0].numpy()

    def step(self, positions: np.ndarray, rotations: np.ndarray, stamp: float) -> TrackedFrame:
        """Advance to ``stamp`` (s) following the estimate ``positions`` (24, 3) and global
        ``rotations`` (24, 3, 3) in the radar frame; returns the simulated body in that frame."""
        positions, rotations = self.floor.to_floor(np.asarray(positions, np.float64), np.asarray(rotations, np.float64))
        finite = np.isfinite(positions).all() and np.isfinite(rotations).all()
        if not finite:        # nothing to follow: stand where we are until a usable target comes
            return self._hold(stamp)
        previous = self._previous
        gap = None if previous is None else stamp - previous[2]
        if (previous is None or not 0 < gap <= self.config.reset_gap_s
                or np.linalg.norm(positions[0] - self._filter.value[0]) > self.config.reset_jump):
            self._filter.reset(positions)
            local, joints = self.targets(positions, rotations)
            return self._reset(local, joints, stamp)
        smoothed = self._filter(positions, gap)
        if self.config.bend_knees > 0:
            smoothed = self._bend_planted_legs(smoothed)
        local, joints = self.targets(smoothed, rotations)
        local = _turned_towards(previous[1], local, self.config.max_joint_speed * gap)
        root = joints[0]
        touching = np.array([bool(pybullet.getContactPoints(self.humanoid.id, self.plane, link, -1,
                                                            physicsClientId=self.client))
                             for link in self.humanoid.foot_links]) if self.config.touch_lands else None
        soles = self._soles(joints)
        contacts = self.detector.update(soles, joints[list(FOOT), :2], stamp, touching)
        if self.config.floor_root and contacts.any():
            # A planted foot under the floor means the estimate's whole body is low (its error is
            # mostly the root's): follow a root that puts that foot on the floor, not one that
            # drives the simulated body into it.
            root = root + np.array([0.0, 0.0, max(-float(soles[contacts].min()), 0.0)])
        self._update_pins(contacts, joints)
        h = self.humanoid
        pybullet.setJointMotorControlMultiDofArray(
            h.id, h.actuated, pybullet.POSITION_CONTROL, targetPositions=_quaternions(local[list(ACTUATED)]).tolist(),
            positionGains=[self.config.joint_gain] * len(h.actuated),
            velocityGains=[self.config.joint_damping] * len(h.actuated), forces=self._motor_forces,
            physicsClientId=self.client)
        velocity = (root - previous[0]) / gap
        spin = Rotation.from_matrix(local[0] @ previous[1][0].T).as_rotvec() / gap
        substeps = min(max(round(gap * self.config.physics_hz), 1), self.config.max_substeps)
        orientation = Rotation.from_matrix(local[0]).as_quat()
        for _ in range(substeps):
            self._drive_root(root, orientation, velocity, spin)
            pybullet.stepSimulation(physicsClientId=self.client)
        self._previous = (root, local, stamp)
        state = self._state()
        if state is None:
            return self._reset(local, joints, stamp)
        return TrackedFrame(*state, contacts=np.array([p is not None for p in self._pins]), reset=False,
                            substeps=substeps)

    def _drive_root(self, root: np.ndarray, orientation: np.ndarray, velocity: np.ndarray, spin: np.ndarray) -> None:
        """The residual PD force and torque on the root towards ``root`` (3,) and ``orientation``
        (4,) xyzw, moving at ``velocity`` and ``spin`` (3,); once per physics step, so in plain numpy."""
        c = self.config
        position, quaternion, linear, angular = self.humanoid.root_state()
        omega = 2 * math.pi * c.root_hz
        force = self.shape.mass * (omega ** 2 * (root - position) + 2 * c.root_damping * omega * (velocity - linear))
        torque = self._inertia * (omega ** 2 * _rotation_error(orientation, quaternion)
                                  + 2 * c.root_damping * omega * (spin - angular))
        force *= min(1.0, self._max_force / max(np.linalg.norm(force), 1e-9))
        torque *= min(1.0, self._max_torque / max(np.linalg.norm(torque), 1e-9))
        h = self.humanoid
        pybullet.applyExternalForce(h.id, -1, force.tolist(), position.tolist(), pybullet.WORLD_FRAME,
                                    physicsClientId=self.client)
        pybullet.applyExternalTorque(h.id, -1, torque.tolist(), pybullet.WORLD_FRAME, physicsClientId=self.client)

    def _update_pins(self, contacts: np.ndarray, joints: np.ndarray) -> None:
        """Pin a foot that comes down where the estimate puts the ball of the foot, on the floor; while
        it stays down, the pin moves to the running mean of those places (the estimate's noise
        averages out, by less each frame); a foot that lifts is let go."""
        h = self.humanoid
        for side in range(2):
            ball = np.array([*joints[FOOT[side], :2], 0.0])
            if contacts[side] and self._pins[side] is None:
                pin = pybullet.createConstraint(h.id, h.foot_links[side], -1, -1, pybullet.JOINT_POINT2POINT,
                                                [0, 0, 0], self._ball_sole[side].tolist(), ball.tolist(),
                                                physicsClientId=self.client)
                pybullet.changeConstraint(pin, maxForce=self._pin_force, physicsClientId=self.client)
                self._pins[side], self._anchors[side], self._planted[side] = pin, ball, 1
            elif contacts[side]:
                self._planted[side] += 1
                self._anchors[side] = self._anchors[side] + (ball - self._anchors[side]) / (
                    self._planted[side] + self.config.anchor_prior)
                pybullet.changeConstraint(self._pins[side], self._anchors[side].tolist(), maxForce=self._pin_force,
                                          physicsClientId=self.client)
            elif self._pins[side] is not None:
                pybullet.removeConstraint(self._pins[side], physicsClientId=self.client)
                self._pins[side] = None

    def _bend_planted_legs(self, positions: np.ndarray) -> np.ndarray:
        """Floor-frame SMPL-24 ``positions`` (24, 3) with each planted foot (pinned last frame) that
        is under the floor lifted towards it (``bend_knees`` of its depth, no higher than
        ``DEEPEST_SQUAT`` under the hip), its knee bent so thigh and shank keep this body's lengths
        and the knee stays in the leg's plane. A learned estimate that sinks into the floor has
        mostly kept the legs straight while the body went down (a squat or a sit seen as a standing
        body lowered); raising the root instead would undo the real part of the descent."""
        out = None
        for side in range(2):
            if self._pins[side] is None:
                continue
            hip, knee, ankle, foot = HIP[side], KNEE[side], ANKLE[side], FOOT[side]
            depth = -min(positions[ankle, 2] - self.shape.clearance[side, 0],
                         positions[foot, 2] - self.shape.clearance[side, 1])
            # A knee bends only so far: past a deep squat the root rises for the rest (floor_root),
            # or a body the estimate drops through the floor would fold its legs up over its hips.
            thigh, shank = self._leg_lengths[side]
            lift = min(self.config.bend_knees * depth,
                       positions[hip, 2] - positions[ankle, 2] - DEEPEST_SQUAT * (thigh + shank))
            if lift <= 0:
                continue
            out = positions.copy() if out is None else out
            out[[ankle, foot], 2] += lift
            out[knee] = _two_bone_knee(out[hip], out[knee], out[ankle], out[foot] - out[ankle], thigh, shank)
        return positions if out is None else out

    def _soles(self, joints: np.ndarray) -> np.ndarray:
        """(2,) height over the floor of each foot's sole, from floor-frame HYBRIK_29 ``joints``."""
        return sole_heights(joints[[list(ANKLE), list(FOOT), list(TOE)]].transpose(1, 0, 2), self.shape.clearance)

    def _unpin_all(self) -> None:
        for side, pin in enumerate(self._pins):
            if pin is not None:
                pybullet.removeConstraint(pin, physicsClientId=self.client)
                self._pins[side] = None

    def _state(self) -> tuple[np.ndarray, np.ndarray] | None:
        positions, quaternions = self.humanoid.joint_state()
        if not (np.isfinite(positions).all() and np.isfinite(quaternions).all()):
            return None
        return self.floor.from_floor(positions, Rotation.from_quat(quaternions).as_matrix())

    def _reset(self, local: np.ndarray, joints: np.ndarray, stamp: float) -> TrackedFrame:
        self._unpin_all()
        self.detector.reset()
        root = joints[0].copy()
        root[2] -= min(float(self._soles(joints).min()), 0.0)    # a target below the floor comes out on it
        self.humanoid.reset(root, _quaternions(local[0]), _quaternions(local[1:]))
        self._previous = (root, local, stamp)
        positions, rotations = self._state()
        return TrackedFrame(positions, rotations, np.zeros(2, dtype=bool), reset=True, substeps=0)

    def _hold(self, stamp: float) -> TrackedFrame:
        if self._previous is None:
            nan = np.full((24, 3), np.nan)
            return TrackedFrame(nan, np.full((24, 3, 3), np.nan), np.zeros(2, dtype=bool), reset=True, substeps=0)
        self._previous = (*self._previous[:2], stamp)
        state = self._state()
        return TrackedFrame(*state, contacts=np.array([p is not None for p in self._pins]), reset=False,
                            substeps=0)
