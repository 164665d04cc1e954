"""Skeleton arrays -> PoseArray, TF and markers: known answers and composition of TF frames."""
import numpy as np
import torch
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from ros2_radar_pose.body.joint_sets import SMPL_24, JointSet
from ros2_radar_pose.body.limits import random_pose
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.body.rotations import matrix_to_quaternion
from ros2_radar_pose.ros.skeleton import (
    pose_array_to_skeleton,
    skeleton_to_markers,
    skeleton_to_pose_array,
    skeleton_to_tf,
)

# A small tree: pelvis -> spine -> head, pelvis -> left hip -> left knee.
SMALL = JointSet("small", ("pelvis", "spine", "head", "left_hip", "left_knee"), (-1, 0, 1, 0, 3))


def random_skeleton(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(5, 3)), Rotation.random(5, random_state=seed).as_quat()


def test_pose_array_round_trip_in_joint_order():
    positions, rotations = random_skeleton(0)
    header = Header(frame_id="radar_link")
    msg = skeleton_to_pose_array(positions, rotations, header)
    assert msg.header.frame_id == "radar_link" and len(msg.poses) == 5
    assert msg.poses[3].position.y == positions[3, 1]
    back_positions, back_rotations = pose_array_to_skeleton(msg)
    np.testing.assert_array_equal(back_positions, positions)
    np.testing.assert_array_equal(back_rotations, rotations)
    identity = skeleton_to_pose_array(positions, None, header)
    assert identity.poses[2].orientation.w == 1.0


def test_composing_tf_frames_reproduces_global_joints():
    positions, rotations = random_skeleton(1)
    header = Header(frame_id="radar_link")
    header.stamp.sec = 7
    tf = skeleton_to_tf(positions, rotations, SMALL, header, body_id="3")
    frames = {t.child_frame_id: t for t in tf.transforms}
    assert set(frames) == {"body_3"} | {f"{n}_3" for n in SMALL.names}
    assert frames["body_3"].header.frame_id == "radar_link"
    assert frames["pelvis_3"].header.frame_id == "body_3"
    assert frames["left_knee_3"].header.frame_id == "left_hip_3"
    assert all(t.header.stamp.sec == 7 for t in tf.transforms)

    def to_radar(frame):
        """Compose transforms from `frame` up to radar_link: (rotation, translation)."""
        t = frames[frame]
        rotation = Rotation.from_quat([t.transform.rotation.x, t.transform.rotation.y,
                                       t.transform.rotation.z, t.transform.rotation.w])
        translation = np.array([t.transform.translation.x, t.transform.translation.y, t.transform.translation.z])
        if t.header.frame_id == "radar_link":
            return rotation, translation
        parent_rotation, parent_translation = to_radar(t.header.frame_id)
        return parent_rotation * rotation, parent_rotation.apply(translation) + parent_translation

    for joint, name in enumerate(SMALL.names):
        rotation, translation = to_radar(f"{name}_3")
        np.testing.assert_allclose(translation, positions[joint], atol=1e-12)
        assert (rotation.inv() * Rotation.from_quat(rotations[joint])).magnitude() < 1e-9


def test_tf_of_a_posed_smpl_body_reproduces_its_joints():
    body = AnthropometricBody()
    local = random_pose(1, torch.Generator().manual_seed(5))
    pose = body(torch.zeros(1, 4), local, torch.tensor([[1.0, 0.2, 2.5]], dtype=torch.float64))
    positions, rotations = pose.joints[0, :24].numpy(), matrix_to_quaternion(pose.global_rotations[0]).numpy()
    tf = skeleton_to_tf(positions, rotations, SMPL_24, Header(frame_id="radar_link"), body_id="0")
    frames = {t.child_frame_id: t for t in tf.transforms}
    assert len(frames) == 25 and frames["left_knee_0"].header.frame_id == "left_hip_0"
    for joint, name in enumerate(SMPL_24.names):
        transform, frame = np.eye(4), f"{name}_0"
        while frame != "radar_link":                  # compose up the tree, as tf2 would
            t = frames[frame].transform
            step = np.eye(4)
            step[:3, :3] = Rotation.from_quat([t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w]).as_matrix()
            step[:3, 3] = [t.translation.x, t.translation.y, t.translation.z]
            transform, frame = step @ transform, frames[frame].header.frame_id
        np.testing.assert_allclose(transform[:3, 3], positions[joint], atol=1e-9)
        np.testing.assert_allclose(transform[:3, :3], pose.global_rotations[0, joint].numpy(), atol=1e-9)


def test_markers_have_stable_ids_bones_and_joints():
    positions, _ = random_skeleton(2)
    markers = skeleton_to_markers(positions, SMALL, Header(frame_id="radar_link"), body_index=2).markers
    bones, joints = markers
    assert (bones.id, joints.id) == (4, 5)
    assert bones.type == Marker.LINE_LIST and joints.type == Marker.SPHERE_LIST
    assert len(bones.points) == 2 * 4 and len(joints.points) == 5
    # The last bone joins left_hip (3) to left_knee (4).
    assert (bones.points[-2].x, bones.points[-1].x) == (positions[3, 0], positions[4, 0])
    assert bones.lifetime.nanosec == 500_000_000
