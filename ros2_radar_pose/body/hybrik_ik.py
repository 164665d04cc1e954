"""HybrIK's twist-and-swing analytical inverse kinematics (Li et al., "HybrIK", CVPR 2021).

From 29 target joints (HYBRIK_29), a twist angle per bone and the rest joints of the body's
shape, find the 24 local SMPL rotations:

- the pelvis by Kabsch/SVD, aligning its three rest child bones with the target ones;
- every other joint in tree order: the joint is placed by forward kinematics from its parent's
  accumulated rotation, and its rotation is the *swing* that carries the rest bone to its child
  onto the direction of the child's target (Rodrigues), times the *twist* about the rest bone by
  the given angle. Aiming from the placed joint rather than from the joint's own target is the
  paper's *adaptive* version: an error in a parent's target does not bend every bone below it.
  The naive version (``adaptive=False``) aims along the target bone instead;
- spine3, with three children (neck and collars), by Kabsch/SVD like the pelvis (its twist is
  not used);
- the five leaf joints give the end bones (head, hands, feet) their direction.

``twist_from_rotations`` gives the twist angles of a known pose, to make training labels.
Everything is batched over the first dimension and vectorised over the joints of each tree
level, differentiable, and runs on any device. Degenerate input (a target on the joint it is
aimed from, a target straight behind the rest bone, coincident or non-finite targets or twists)
never yields NaN: the swing (or twist) falls back to identity and ``degenerate`` says where.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.kinematics import rest_bones, tree_levels
from ros2_radar_pose.body.rotations import cached_constants, closest_rotation, rotation_about, rotation_between

ROOT, SPINE3 = 0, 9
ROOT_CHILDREN, SPINE3_CHILDREN = (1, 2, 3), (12, 13, 14)
# The child (HYBRIK_29 index) whose bone gives each other SMPL joint its swing and twist.
BONE_CHILD = {1: 4, 2: 5, 3: 6, 4: 7, 5: 8, 6: 9, 7: 10, 8: 11, 10: 27, 11: 28, 12: 15, 13: 16, 14: 17,
              15: 24, 16: 18, 17: 19, 18: 20, 19: 21, 20: 22, 21: 23, 22: 25, 23: 26}
N_ROTATIONS, N_TWISTS = 24, 23          # twists are given for joints 1..23, at index joint - 1
_SWUNG = tuple(BONE_CHILD)
_SLOT = {joint: slot for slot, joint in enumerate(_SWUNG)}
_ANTIPARALLEL = -1.0 + 1e-6             # cos below which the swing axis is undefined


@dataclass
class IKResult:
    """``local_rotations`` (B, 24, 3, 3); ``joints`` (B, 29, 3): the solution's posed joints, root
    on the target root; ``translation`` (B, 3): the SMPL translation that puts the rest root
    there; ``degenerate`` (B, 24) bool: joints whose swing or twist fell back to identity;
    ``global_rotations`` (B, 24, 3, 3): the solution's forward kinematics, which solving builds
    anyway (a separate forward kinematics pass costs a quarter of the IK at batch 1)."""

    local_rotations: torch.Tensor
    joints: torch.Tensor
    translation: torch.Tensor
    degenerate: torch.Tensor
    global_rotations: torch.Tensor


@dataclass(frozen=True)
class _Level:
    """One depth of HYBRIK_29 for batched solving. ``joints`` are ordered swung joints first, then
    spine3 if present, then leaves; ``parent_slot`` indexes the previous level's joints; the
    swung joints are ``swung`` (a slice) of the level-ordered swung arrays."""

    joints: tuple[int, ...]
    parent_slot: tuple[int, ...]
    swung: slice
    has_spine3: bool

    @property
    def n_swung(self) -> int:
        return self.swung.stop - self.swung.start

    @property
    def n_rotations(self) -> int:
        return self.n_swung + self.has_spine3


@lru_cache(maxsize=1)
def _levels() -> tuple[_Level, ...]:
    levels, previous, start = [], (ROOT,), 0
    for joints, _ in tree_levels(HYBRIK_29.parents):
        swung = [j for j in joints if j in _SLOT]
        ordered = swung + [j for j in joints if j == SPINE3] + [j for j in joints if j >= N_ROTATIONS]
        levels.append(_Level(tuple(ordered), tuple(previous.index(HYBRIK_29.parents[j]) for j in ordered),
                             slice(start, start + len(swung)), SPINE3 in ordered))
        previous, start = tuple(ordered), start + len(swung)
    return tuple(levels)


@cached_constants(maxsize=8)
def _indices(device: torch.device) -> dict[str, torch.Tensor]:
    """Index tensors of the level plan on ``device``, built once. Every per-joint input is gathered
    once into level order, so each level reads contiguous slices."""
    def tensor(values) -> torch.Tensor:
        return torch.tensor(list(values), dtype=torch.long, device=device)
    levels = _levels()
    swung = [j for level in levels for j in level.joints[:level.n_swung]]       # level order
    rotation_order = [ROOT] + [j for level in levels for j in level.joints[:level.n_rotations]]
    position_order = [ROOT] + [j for level in levels for j in level.joints]
    index = {"swung": tensor(swung), "kids": tensor(BONE_CHILD[j] for j in swung),
             "twist": tensor(j - 1 for j in swung), "level_joints": tensor(position_order[1:]),
             "rotation_inverse": tensor(rotation_order.index(j) for j in range(N_ROTATIONS)),
             "position_inverse": tensor(position_order.index(j) for j in range(len(HYBRIK_29))),
             "root_children": tensor(ROOT_CHILDREN), "root_valid": tensor((ROOT, *ROOT_CHILDREN)),
             "spine3_children": tensor(SPINE3_CHILDREN), "spine3_valid": tensor((SPINE3, *SPINE3_CHILDREN)),
             "parent_index": tensor(max(p, 0) for p in HYBRIK_29.parents)}
    for k, level in enumerate(levels):
        index[f"{k}.parent"] = tensor(level.parent_slot)
    return index


def inverse_kinematics(targets: torch.Tensor, twist: torch.Tensor, rest_joints: torch.Tensor,
                       adaptive: bool = True, eps: float = 1e-6) -> IKResult:
    """Local rotations from ``targets`` (B, 29, 3), ``twist`` (B, 23, 2) as (cos, sin), normalised
    here, and ``rest_joints`` (B, 29, 3) of the body's shape."""
    index = _indices(targets.device)

    def pick(x: torch.Tensor, name: str) -> torch.Tensor:
        return x.index_select(0, index[name])

    # Joint-major from here on, (joints, B, ...): a level's joints are then contiguous blocks.
    finite = torch.isfinite(targets).all(-1).T                                   # (29, B)
    targets = torch.where(finite.T[..., None], targets, torch.zeros_like(targets))
    translation = targets[:, ROOT] - rest_joints[:, ROOT]
    targets = (targets - translation[:, None]).transpose(0, 1)   # the target root onto the rest root
    rest = rest_joints.transpose(0, 1)
    bones = rest - pick(rest, "parent_index")                                    # (29, B, 3); root's unused
    # What the levels read, gathered once in level order; each level takes a contiguous slice.
    level_bones = pick(bones, "level_joints")
    kid_targets, kid_finite = pick(targets, "kids"), pick(finite, "kids")
    if not adaptive:
        kid_finite = kid_finite & pick(finite, "swung")
        origins = pick(targets, "swung")
    axes = _unit(pick(bones, "kids"))                                            # (22, B, 3), rest bones
    twists, twist_ok = _twist_rotations(twist.transpose(0, 1).index_select(0, index["twist"]), axes, eps)

    root, root_bad = _kabsch(pick(bones, "root_children"), pick(targets, "root_children") - targets[:1],
                             pick(finite, "root_valid").all(0), eps)
    chain, positions = root[None], rest[:1]                                      # level 0
    all_local, all_global, all_bad, all_positions = [root[None]], [root[None]], [root_bad[None]], [positions]
    offset = 0
    for k, level in enumerate(_levels()):
        slots = level.parent_slot
        if slots == tuple(range(len(slots))):         # parents are the previous level's first joints
            parent_chain, parent_pos = chain[:len(slots)], positions[:len(slots)]
        else:
            parent_chain, parent_pos = pick(chain, f"{k}.parent"), pick(positions, f"{k}.parent")
        n = len(slots)
        positions = parent_pos + (parent_chain @ level_bones[offset:offset + n, ..., None])[..., 0]
        offset += n
        local, bad = [], []
        if level.n_swung:
            frame, span = parent_chain[:level.n_swung], level.swung
            origin = positions[:level.n_swung] if adaptive else origins[span]
            aim = (frame.transpose(-1, -2) @ (kid_targets[span] - origin)[..., None])[..., 0]
            swing, ok = _swing(axes[span], aim, kid_finite[span], eps)
            local.append(swing @ twists[span])
            bad.append(~(ok & twist_ok[span]))
        if level.has_spine3:
            frame = parent_chain[level.n_swung]
            origin = positions[level.n_swung] if adaptive else targets[SPINE3]
            aim = ((pick(targets, "spine3_children") - origin)[..., None, :] @ frame)[..., 0, :]
            spine3, spine3_bad = _kabsch(pick(bones, "spine3_children"), aim,
                                         pick(finite, "spine3_valid").all(0), eps)
            local.append(spine3[None])
            bad.append(spine3_bad[None])
        all_positions.append(positions)
        if not local:                 # a level of leaves only: nothing hangs below it
            continue
        rotations = torch.cat(local) if len(local) > 1 else local[0]
        # Leaves come last in a level and parent nothing, so the chain stops short of them.
        chain = parent_chain[:level.n_rotations] @ rotations
        all_local.append(rotations)
        all_global.append(chain)
        all_bad.append(torch.cat(bad) if len(bad) > 1 else bad[0])
    local_rotations = pick(torch.cat(all_local), "rotation_inverse").transpose(0, 1)
    joints = pick(torch.cat(all_positions), "position_inverse").transpose(0, 1) + translation[:, None]
    return IKResult(local_rotations, joints, translation, pick(torch.cat(all_bad), "rotation_inverse").T,
                    pick(torch.cat(all_global), "rotation_inverse").transpose(0, 1))


def twist_from_rotations(local_rotations: torch.Tensor, rest_joints: torch.Tensor,
                         eps: float = 1e-6) -> torch.Tensor:
    """Twist (cos, sin) of each joint about its rest bone, (B, 23, 2), from local rotations
    (B, 24, 3, 3) and rest joints (B, 29, 3). Spine3's entry is (1, 0): the IK does not use it.

    A local rotation R = swing @ twist, where the twist turns about the rest bone u and the swing
    is the smallest rotation carrying u onto R u.
    """
    bones = rest_bones(rest_joints, HYBRIK_29.parents)
    axes = _unit(bones[:, [BONE_CHILD[j] for j in _SWUNG]])                      # (B, 22, 3)
    rotations = local_rotations[:, list(_SWUNG)]
    swing, _ = _swing(axes, (rotations @ axes[..., None])[..., 0],
                      torch.ones(axes.shape[:2], dtype=torch.bool, device=axes.device), eps)
    twist = swing.transpose(-1, -2) @ rotations
    cos = (twist.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    axial = torch.stack([twist[..., 2, 1] - twist[..., 1, 2], twist[..., 0, 2] - twist[..., 2, 0],
                         twist[..., 1, 0] - twist[..., 0, 1]], dim=-1)
    sin = (axial * axes).sum(-1) / 2.0
    result = torch.zeros(*rotations.shape[:1], N_TWISTS, 2, dtype=rotations.dtype, device=rotations.device)
    result[..., 0] = 1.0
    result[:, [j - 1 for j in _SWUNG]] = torch.stack([cos, sin], dim=-1)
    return result / torch.linalg.vector_norm(result, dim=-1, keepdim=True)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def _swing(axis: torch.Tensor, aim: torch.Tensor, valid: torch.Tensor, eps: float):
    """Rotations (..., 3, 3) carrying unit ``axis`` (..., 3) onto the direction of ``aim``, and
    where that was possible (...,); elsewhere identity. Degenerate rows are replaced *before*
    any division, so no NaN reaches values or gradients."""
    length = torch.linalg.vector_norm(aim, dim=-1, keepdim=True)      # torch's norm has a zero gradient at zero
    direction = aim / length.clamp_min(eps)
    cos = (axis * direction).sum(-1)
    ok = valid & (length[..., 0] > eps) & (cos > _ANTIPARALLEL)
    direction = torch.where(ok[..., None], direction, axis)
    return rotation_between(axis, direction, torch.where(ok, cos, 1.0)), ok


def _twist_rotations(twist: torch.Tensor, axes: torch.Tensor, eps: float):
    """Rotations about ``axes`` (..., 3) by ``twist`` (..., 2) = (cos, sin) up to scale, and where
    the twist was usable (finite, not zero); elsewhere identity."""
    with torch.no_grad():
        ok = torch.isfinite(twist).all(-1) & (torch.linalg.vector_norm(twist, dim=-1) > eps)
    twist = torch.where(ok[..., None], twist, torch.ones_like(twist) * twist.new_tensor([1.0, 0.0]))
    twist = twist / torch.linalg.vector_norm(twist, dim=-1, keepdim=True)
    return rotation_about(axes, twist[..., 0], twist[..., 1]), ok


def _kabsch(rest: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, eps: float):
    """The rotation (B, 3, 3) best carrying ``rest`` vectors (k, B, 3) onto ``target`` (k, B, 3),
    and where it was defined (valid, and the vectors span at least a plane); elsewhere identity.

    With gradients, ``closest_rotation``'s Procrustes (its backward damps the SVD's ill-conditioned
    terms); without, one plain SVD, which skips the custom function's checks.
    """
    identity = torch.eye(3, dtype=rest.dtype, device=rest.device)
    covariance = (target[..., :, None] * rest[..., None, :]).sum(0)           # sum of target rest^T
    if covariance.requires_grad:
        with torch.no_grad():
            singular = torch.linalg.svdvals(covariance)
        ok = valid & (singular[:, 0] > eps) & (singular[:, 1] > eps * singular[:, 0])
        # Scaled to unit size: the backward damps gradient terms below an absolute threshold, and bones of
        # ~0.1 m make covariances of ~0.01 whose terms would be damped too.
        scale = torch.where(ok, singular[:, 0], 1.0)[:, None, None]
        rotation = closest_rotation(torch.where(ok[:, None, None], covariance / scale, identity))
    else:
        u, singular, vh = torch.linalg.svd(covariance)
        ok = valid & (singular[:, 0] > eps) & (singular[:, 1] > eps * singular[:, 0])
        rotation = u @ vh
        # det(u vh) = -1 is a reflection: flipping u's last column makes it the closest rotation.
        det = (torch.linalg.cross(rotation[:, 0], rotation[:, 1], dim=-1) * rotation[:, 2]).sum(-1)
        u[:, :, 2] *= det.sign()[:, None]
        rotation = u @ vh
    return torch.where(ok[:, None, None], rotation, identity), ~ok


def skeleton_targets(positions: torch.Tensor, global_rotations: torch.Tensor,
                     rest_joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IK input from a published skeleton: SMPL-24 ``positions`` (B, 24, 3) and global rotations
    (B, 24, 3, 3) -> HYBRIK_29 targets (B, 29, 3) and twists (B, 23, 2), for ``rest_joints``
    (B or 1, 29, 3). The five leaves are their parent's rest bone turned by the parent's
    orientation; the twists are those of the orientations. Solving these targets gives rotations
    whose bones point at the given positions, with the given orientations' twist."""
    parents = HYBRIK_29.parents
    rest = rest_joints.expand(len(positions), -1, -1)
    leaves, leaf_parents = list(range(24, 29)), [parents[j] for j in range(24, 29)]
    bones = rest[:, leaves] - rest[:, leaf_parents]                                        # (B, 5, 3)
    tips = positions[:, leaf_parents] + (global_rotations[:, leaf_parents] @ bones[..., None])[..., 0]
    local = global_rotations.clone()
    local[:, 1:] = global_rotations[:, list(parents[1:24])].transpose(-1, -2) @ global_rotations[:, 1:]
    return torch.cat([positions, tips], dim=1), twist_from_rotations(local, rest)
