"""Skeleton arrays -> PoseArray, TFMessage (REP-155 frames) and MarkerArray, and back.

A skeleton is ``positions`` (J, 3) in the header's frame and ``rotations`` (J, 4), each joint's
global orientation as a quaternion (x, y, z, w), in the order of a JointSet (SMPL-24 unless a
parameter says otherwise), whose parents give the kinematic tree. Message objects are built per
joint (J is tens, never per radar point).
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion, TransformStamped, Vector3
from scipy.spatial.transform import Rotation
from std_msgs.msg import ColorRGBA, Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from ros2_radar_pose.body.joint_sets import JointSet


def _identity_rotations(count: int) -> np.ndarray:
    return np.tile(np.array([0.0, 0.0, 0.0, 1.0]), (count, 1))


def skeleton_to_pose_array(positions: np.ndarray, rotations: np.ndarray | None, header: Header) -> PoseArray:
    """One Pose per joint, in joint order. ``rotations`` None gives identity orientations."""
    positions = np.asarray(positions, dtype=np.float64)
    rotations = _identity_rotations(len(positions)) if rotations is None else np.asarray(rotations, np.float64)
    return PoseArray(header=header, poses=[
        Pose(position=Point(x=p[0], y=p[1], z=p[2]), orientation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3]))
        for p, q in zip(positions.tolist(), rotations.tolist())])


def pose_array_to_skeleton(msg: PoseArray) -> tuple[np.ndarray, np.ndarray]:
    """(positions (J, 3), rotations (J, 4) xyzw) of a skeleton PoseArray."""
    positions = np.array([(p.position.x, p.position.y, p.position.z) for p in msg.poses], dtype=np.float64)
    rotations = np.array([(p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w)
                          for p in msg.poses], dtype=np.float64)
    return positions.reshape(-1, 3), rotations.reshape(-1, 4)


def joint_frame(name: str, body_id: str) -> str:
    """REP-155 frame name of a joint of body ``body_id``."""
    return f"{name}_{body_id}"


def skeleton_to_tf(positions: np.ndarray, rotations: np.ndarray, joint_set: JointSet, header: Header,
                   body_id: str) -> TFMessage:
    """TF frames for one body (REP-155): ``body_<id>`` at the root joint under
    ``header.frame_id``, then one ``<joint>_<id>`` frame per joint of ``joint_set`` with its
    transform relative to its parent's frame (the root joint's frame coincides with ``body_<id>``).
    ``positions`` (J, 3) and global ``rotations`` (J, 4) (x, y, z, w) in the header's frame."""
    parents, names = joint_set.parents, joint_set.names
    positions = np.asarray(positions, dtype=np.float64)
    rotations = Rotation.from_quat(np.asarray(rotations, dtype=np.float64))
    parents = np.asarray(parents)
    root = int(np.flatnonzero(parents < 0)[0])
    # Local transform of each joint in its parent's frame; the root's parent is the body frame.
    parent_index = np.where(parents < 0, root, parents)
    parent_inverse = rotations[parent_index].inv()
    local_translation = parent_inverse.apply(positions - positions[parent_index])
    local_rotation = (parent_inverse * rotations).as_quat()
    body = f"body_{body_id}"
    transforms = [transform_stamped(header, body, positions[root], rotations[root].as_quat())]
    for joint, name in enumerate(names):
        parent = body if parents[joint] < 0 else joint_frame(names[parents[joint]], body_id)
        child_header = Header(stamp=header.stamp, frame_id=parent)
        transforms.append(transform_stamped(child_header, joint_frame(name, body_id),
                                     local_translation[joint], local_rotation[joint]))
    return TFMessage(transforms=transforms)


def transform_stamped(header: Header, child: str, translation, rotation) -> TransformStamped:
    """A TransformStamped from ``header`` (parent frame, stamp) to ``child``: translation (3,) m
    and rotation (4,) x, y, z, w."""
    t, q = np.asarray(translation, dtype=np.float64).tolist(), np.asarray(rotation, dtype=np.float64).tolist()
    msg = TransformStamped(header=header, child_frame_id=child)
    msg.transform.translation = Vector3(x=t[0], y=t[1], z=t[2])
    msg.transform.rotation = Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])
    return msg


def skeleton_to_markers(positions: np.ndarray, joint_set: JointSet, header: Header, body_index: int = 0,
                        namespace: str = "skeleton", color: tuple[float, float, float, float] = (0.1, 0.8, 0.3, 1.0),
                        lifetime: float = 0.5) -> MarkerArray:
    """Bones as one LINE_LIST and joints as one SPHERE_LIST. Marker ids are 2*body_index and
    2*body_index+1, stable from frame to frame, so RViz replaces rather than accumulates; a
    ``lifetime`` (s) lets a skeleton that stops being published disappear."""
    points = [Point(x=p[0], y=p[1], z=p[2]) for p in np.asarray(positions, dtype=np.float64).tolist()]
    rgba = ColorRGBA(r=color[0], g=color[1], b=color[2], a=color[3])
    seconds = int(lifetime)
    life = Duration(sec=seconds, nanosec=int(round((lifetime - seconds) * 1e9)))
    bones = Marker(header=header, ns=namespace, id=2 * body_index, type=Marker.LINE_LIST, action=Marker.ADD,
                   color=rgba, lifetime=life,
                   points=[p for parent, child in joint_set.bones for p in (points[parent], points[child])])
    bones.scale.x = 0.02
    joints = Marker(header=header, ns=namespace, id=2 * body_index + 1, type=Marker.SPHERE_LIST,
                    action=Marker.ADD, color=rgba, lifetime=life, points=points)
    joints.scale.x = joints.scale.y = joints.scale.z = 0.05
    for marker in (bones, joints):
        marker.pose.orientation.w = 1.0
    return MarkerArray(markers=[bones, joints])
