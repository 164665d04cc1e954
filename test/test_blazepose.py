"""The BlazePose teacher: the landmark mapping and root solve on known answers, and MediaPipe on a
real photograph (skimage's astronaut) and on images with nobody in them."""
import sys
from math import radians

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from ros2_radar_pose.body.joint_sets import HYBRIK_29, SMPL_24
from ros2_radar_pose.body.kinematics import forward_kinematics
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.teacher.blazepose import (
    FALLBACK_DEPTH,
    LANDMARKS,
    RADAR_SURFACE_DEPTH,
    BlazePoseBackend,
    landmarks_to_hybrik29,
    place_targets,
    translation_from_image,
)
from ros2_radar_pose.teacher.camera import PinholeCamera
from ros2_radar_pose.teacher.crop import PersonBox

pytest.importorskip("mediapipe")      # the optional extra; the mapping above never needs it
J, L = HYBRIK_29.index, LANDMARKS.index
CAMERA = PinholeCamera.from_field_of_view(512, 512, radians(60))
TRUNK = ("pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "neck", "head", "left_shoulder",
         "right_shoulder")


def local(axis: str, angle: float) -> np.ndarray:
    return Rotation.from_euler(axis, angle).as_matrix()


def posed_skeleton(yaws) -> tuple[np.ndarray, np.ndarray]:
    """The built-in body facing the camera (optical frame), turned by ``yaws`` (N,) about its up axis,
    arms down, elbows, hips and knees bent, the spine bent forward 10 degrees, the head nodding:
    HYBRIK_29 joints (N, 29, 3) and global rotations (N, 24, 3, 3)."""
    body = AnthropometricBody()
    rest = body.rest_joints(torch.zeros(len(yaws), body.num_betas, dtype=torch.float64))
    rotations = np.tile(np.eye(3), (len(yaws), 24, 1, 1))
    # Canonical left, up, forward -> the optical frame's x, -y, -z: the person faces the camera.
    facing = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    rotations[:, 0] = facing @ Rotation.from_euler("y", yaws[:, None]).as_matrix()
    for name, axis, angle in (("spine1", "x", 0.17), ("left_shoulder", "z", -1.2), ("right_shoulder", "z", 1.2),
                              ("left_elbow", "y", -0.8), ("right_elbow", "y", 0.5), ("left_hip", "x", -0.4),
                              ("left_knee", "x", 0.6), ("right_knee", "x", 0.2), ("head", "x", 0.2)):
        rotations[:, J(name)] = local(axis, angle)
    joints, globals_ = forward_kinematics(torch.from_numpy(rotations), rest)
    return joints.numpy(), globals_.numpy()


def synthetic_landmarks(joints: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """BlazePose world landmarks (N, 33, 3) from posed joints, with offsets that follow the module's
    documented approximations: hip landmarks 30 % outside SMPL's hips, ears beside the head joint,
    eyes straight forward of the ears, knuckles across the palm at the hand joint, foot_index on
    the big toe; hip-centred like MediaPipe's."""
    marks = np.zeros((len(joints), len(LANDMARKS), 3))

    def at(joint: str, offset) -> np.ndarray:          # an offset in the joint's own rest axes
        return joints[:, J(joint)] + rotations[:, J(joint)] @ np.asarray(offset, dtype=np.float64)

    for side, sign in (("left", 1.0), ("right", -1.0)):
        for name in ("shoulder", "elbow", "wrist", "knee", "ankle"):
            marks[:, L(f"{side}_{name}")] = joints[:, J(f"{side}_{name}")]
        hips = 0.5 * (joints[:, J("left_hip")] + joints[:, J("right_hip")])
        marks[:, L(f"{side}_hip")] = hips + 1.3 * (joints[:, J(f"{side}_hip")] - hips)
        marks[:, L(f"{side}_ear")] = at("head", (sign * 0.07, 0.0, 0.0))
        for eye, dx in (("eye_inner", 0.015), ("eye", 0.03), ("eye_outer", 0.045)):
            marks[:, L(f"{side}_{eye}")] = at("head", (sign * dx, 0.0, 0.09))
        marks[:, L(f"mouth_{side}")] = at("head", (sign * 0.025, -0.05, 0.09))
        # Arms hang down with the palm facing back: index and pinky knuckles lie along the hand's z.
        marks[:, L(f"{side}_index")] = at(f"{side}_hand", (0.0, 0.0, 0.03))
        marks[:, L(f"{side}_pinky")] = at(f"{side}_hand", (0.0, 0.0, -0.03))
        marks[:, L(f"{side}_thumb")] = at(f"{side}_wrist", (sign * 0.03, 0.0, 0.04))
        marks[:, L(f"{side}_heel")] = at(f"{side}_ankle", (0.0, -0.05, -0.05))
        marks[:, L(f"{side}_foot_index")] = joints[:, J(f"{side}_big_toe")]
    marks[:, L("nose")] = at("head", (0.0, -0.02, 0.12))
    return marks - 0.5 * (marks[:, [L("left_hip")]] + marks[:, [L("right_hip")]])


@pytest.fixture(scope="module")
def synthetic():
    joints, rotations = posed_skeleton(np.array([0.0, 0.5, -0.9]))
    marks = synthetic_landmarks(joints, rotations)
    # The truth in the landmarks' hip-centred frame (their hip midpoint is SMPL's).
    return marks, joints - 0.5 * (joints[:, [J("left_hip")]] + joints[:, [J("right_hip")]])


def test_mapping_recovers_a_known_skeleton_without_swapping_sides(synthetic):
    marks, truth = synthetic
    mapped = landmarks_to_hybrik29(marks)
    error = np.linalg.norm(mapped - truth, axis=-1)                                   # (N, 29)
    assert error.max() < 0.03, {HYBRIK_29.names[j]: round(e, 3) for j, e in enumerate(error.max(0))}
    # Shoulders, elbows, wrists, knees, ankles, hands, the head and the toes are the same points.
    exact = [J(f"{s}_{n}") for s in ("left", "right") for n in ("shoulder", "elbow", "wrist", "knee", "ankle",
                                                                  "hand", "big_toe")] + [J("head")]
    assert error[:, exact].max() < 1e-9
    for name in HYBRIK_29.names:
        if name.startswith("left_"):
            left, right = J(name), J(name.replace("left_", "right_"))
            assert (np.linalg.norm(mapped[:, left] - truth[:, left], axis=-1)
                    < np.linalg.norm(mapped[:, left] - truth[:, right], axis=-1)).all(), name


def test_mapping_scales_with_the_person(synthetic):
    marks, _ = synthetic
    np.testing.assert_allclose(landmarks_to_hybrik29(1.2 * marks), 1.2 * landmarks_to_hybrik29(marks), atol=1e-12)


def test_root_from_the_image_known_answer(synthetic):
    marks = synthetic[0][1]
    t = np.array([0.3, -0.2, 3.5])
    pixels = CAMERA.project(marks + t)
    np.testing.assert_allclose(translation_from_image(marks, pixels, CAMERA), t, atol=1e-3)
    # Landmarks below the visibility threshold do not enter, however wrong their pixels.
    visibility = np.ones(len(LANDMARKS))
    visibility[[L("left_knee"), L("right_ankle"), L("nose")]] = 0.1
    pixels[[L("left_knee"), L("right_ankle"), L("nose")]] += 80.0
    np.testing.assert_allclose(translation_from_image(marks, pixels, CAMERA, visibility), t, atol=1e-3)


def test_root_falls_back_on_the_hip_ray_when_the_image_cannot_tell_the_depth(synthetic):
    marks = synthetic[0][0]
    hips = [L("left_hip"), L("right_hip")]
    for t, visibility in ((np.array([5.0, 1.0, 300.0]), None),           # 4 px tall: depth unmeasurable
                          (np.array([0.2, 0.1, 3.0]), np.eye(len(LANDMARKS))[hips].sum(0))):   # two landmarks
        pixels = CAMERA.project(marks + t)
        found = translation_from_image(marks, pixels, CAMERA, visibility)
        np.testing.assert_allclose(found[2], FALLBACK_DEPTH, atol=1e-9)
        np.testing.assert_allclose(CAMERA.project(found), pixels[hips].mean(0), atol=1e-6)


def test_radar_centre_places_the_pelvis_behind_the_cluster(synthetic):
    marks = synthetic[0][2]
    centre = np.array([0.4, 0.3, 2.5])
    targets = place_targets(marks, np.full((len(LANDMARKS), 2), np.nan), np.ones(len(LANDMARKS)), CAMERA, centre)
    pelvis = targets[J("pelvis")]
    # On the camera's ray through the centre, RADAR_SURFACE_DEPTH further away.
    np.testing.assert_allclose(np.cross(pelvis, centre), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(pelvis), np.linalg.norm(centre) + RADAR_SURFACE_DEPTH, atol=1e-12)
    mapped = landmarks_to_hybrik29(marks[None])[0]
    np.testing.assert_allclose(targets - pelvis, mapped - mapped[J("pelvis")], atol=1e-12)


@pytest.fixture(scope="module")
def backend():
    with BlazePoseBackend() as blazepose:
        yield blazepose


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def astronaut_pose(backend, astronaut):
    (pose,) = backend.estimate(astronaut[None], CAMERA, [None], [None])
    return pose


def test_astronaut_is_found_upright_facing_the_camera(astronaut_pose):
    pose = astronaut_pose
    assert pose is not None and 0.5 <= pose.score <= 1.0
    assert pose.positions.shape == (24, 3) and pose.positions.dtype == np.float32
    assert pose.rotations.shape == (24, 3, 3) and pose.rotations.dtype == np.float32
    p = {name: pose.positions[k] for k, name in enumerate(SMPL_24.names)}
    assert np.isfinite(pose.positions).all()
    # Optical frame: y is down, x is right; she faces the camera, so her left is on the image's right.
    assert max(p["left_shoulder"][1], p["right_shoulder"][1]) < min(p["left_hip"][1], p["right_hip"][1])
    assert p["left_shoulder"][0] > p["right_shoulder"][0] and p["left_hip"][0] > p["right_hip"][0]
    assert p["head"][1] < p["neck"][1]
    np.testing.assert_allclose(pose.rotations @ pose.rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3),
                               (24, 3, 3)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(pose.rotations), 1.0, atol=1e-5)
    # The trunk's and head's frames (columns: SMPL's left, up, forward) face the camera upright:
    # left along the image's x, up along -y, forward along -z.
    for name in ("pelvis", "spine3", "head"):
        frame = pose.rotations[SMPL_24.index(name)]
        assert (np.diag(frame) * (1, -1, -1) > 0.8).all(), (name, frame)
    trunk = pose.positions[[SMPL_24.index(n) for n in TRUNK]]
    assert ((trunk[:, 2] > 0.5) & (trunk[:, 2] < 10.0)).all(), trunk[:, 2]
    # Limbs may reach towards the camera, but stay in front of it and near the body.
    assert (pose.positions[:, 2] > 0.2).all()
    assert np.linalg.norm(pose.positions - pose.positions[0], axis=-1).max() < 1.5


def test_astronaut_with_a_radar_centre(backend, astronaut):
    centre = np.array([0.1, 0.2, 3.0])
    (pose,) = backend.estimate(astronaut[None], CAMERA, [None], [centre])
    np.testing.assert_allclose(pose.positions[0], centre * (1 + RADAR_SURFACE_DEPTH / np.linalg.norm(centre)),
                               atol=1e-5)


def test_a_box_crops_and_maps_back_to_image_pixels(backend, astronaut):
    # The astronaut pasted into a larger grey frame: the box's crop is the original image exactly.
    canvas = np.full((700, 800, 3), 127, np.uint8)
    canvas[100:612, 200:712] = astronaut
    box = PersonBox(200 + 255.5, 100 + 255.5, 512.0)
    inside, whole = backend.detect(canvas, box), backend.detect(astronaut)
    np.testing.assert_allclose(inside.pixels, whole.pixels + (200, 100), atol=1e-6)
    np.testing.assert_array_equal(inside.world, whole.world)
    # A box beyond the image is clipped to it; one that leaves too little of the image finds nobody.
    clipped = backend.detect(astronaut, PersonBox(255.5, 255.5, 700.0))
    np.testing.assert_allclose(clipped.pixels, whole.pixels, atol=1e-6)
    assert backend.detect(astronaut, PersonBox(-190.0, 250.0, 400.0)) is None


def test_images_without_a_person_give_none(backend, astronaut):
    images = np.stack([np.zeros_like(astronaut), np.full_like(astronaut, 128), astronaut])
    poses = backend.estimate(images, CAMERA, [None, None, PersonBox(255.5, 255.5, 600.0)], [None] * 3)
    assert poses[0] is None and poses[1] is None and poses[2] is not None
    assert poses[2].box == PersonBox(255.5, 255.5, 600.0)


def test_min_score_and_close(astronaut):
    with BlazePoseBackend(min_score=0.99) as strict:
        assert strict.estimate(astronaut[None], CAMERA, [None], [None]) == [None]      # her hips are hidden
        assert strict._pose is not None
    assert strict._pose is None


def test_missing_mediapipe_says_how_to_install(monkeypatch, astronaut):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(ImportError, match=r"pip install mediapipe==0\.10\.14"):
        BlazePoseBackend().detect(astronaut)
