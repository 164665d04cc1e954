"""The teacher's geometry (camera, mount, person box, crop), image decoding, and the offline
labeller end to end on a bag of real photographs."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ros2_radar_pose import topics
from ros2_radar_pose.data.bags import BagReader, BagWriter, Transform
from ros2_radar_pose.teacher.camera import CameraMount, PinholeCamera, mount_from_transforms
from ros2_radar_pose.teacher.crop import INPUT_SIZE, MEAN, STD, PersonBox, crop_images
from ros2_radar_pose.teacher.images import ImageError, camera_from_info, image_to_rgb

CAMERA = PinholeCamera.from_field_of_view(640, 480, math.radians(70))


def test_projection_and_backprojection_invert_each_other():
    rng = np.random.default_rng(0)
    points = rng.uniform([-1, -1, 0.5], [1, 1, 6], (50, 3))
    pixels = CAMERA.project(points)
    assert np.allclose(CAMERA.backproject(pixels, points[:, 2]), points)
    assert np.allclose(CAMERA.project([0.0, 0.0, 3.0]), [CAMERA.cx, CAMERA.cy])
    assert np.isnan(CAMERA.project([0.0, 0.0, -1.0])).all()          # behind the camera
    # 70 degrees across 640 pixels: the image edge is 35 degrees off the axis.
    assert CAMERA.project([math.tan(math.radians(35)), 0.0, 1.0])[0] == pytest.approx(639.5)


def test_mount_turns_the_optical_frame_into_the_radar_frame():
    level = CameraMount.from_body_pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    # optical: x right, y down, z forward -> radar: x forward, y left, z up
    assert np.allclose(level.to_radar([0.0, 0.0, 2.0]), [2.0, 0.0, 0.0])
    assert np.allclose(level.to_radar([1.0, 0.0, 0.0]), [0.0, -1.0, 0.0])
    assert np.allclose(level.to_radar([0.0, 1.0, 0.0]), [0.0, 0.0, -1.0])
    turned = CameraMount.from_body_pose([0.1, 0.0, 0.3], [0.0, 0.0, math.pi / 2])   # looking left
    assert np.allclose(turned.to_radar([0.0, 0.0, 2.0]), [0.1, 2.0, 0.3])
    assert np.allclose(turned.to_camera(turned.to_radar([0.3, -0.2, 4.0])), [0.3, -0.2, 4.0])
    rotations = np.stack([np.eye(3)] * 2)
    _, moved = turned.to_radar(np.zeros((2, 3)), rotations)
    assert np.allclose(moved, turned.rotation)


def test_mount_from_a_chain_of_static_transforms_either_way():
    mount = CameraMount.from_body_pose([0.2, -0.1, 0.4], [0.05, 0.1, -0.3])
    base = Transform("radar_link", "base_link", np.array([-0.5, 0.0, -0.8]), np.array([0.0, 0.0, 0.0, 1.0]))
    # camera in base_link = camera in radar shifted by the radar's offset
    camera = Transform("base_link", "camera_optical_frame", mount.translation + [0.5, 0.0, 0.8], mount.quaternion)
    found = mount_from_transforms([camera, base], "radar_link", "camera_optical_frame")
    assert np.allclose(found.rotation, mount.rotation) and np.allclose(found.translation, mount.translation)
    inverse = CameraMount(mount.rotation.T, -mount.rotation.T @ mount.translation)
    reverse = Transform("camera_optical_frame", "radar_link", inverse.translation, inverse.quaternion)
    found = mount_from_transforms([reverse], "radar_link", "camera_optical_frame")
    assert np.allclose(found.rotation, mount.rotation) and np.allclose(found.translation, mount.translation)
    assert mount_from_transforms([base], "radar_link", "camera_optical_frame") is None
    with pytest.raises(ValueError):
        CameraMount(np.diag([1.0, 1.0, -1.0]), np.zeros(3))           # a reflection


def test_person_box_from_the_radar_cluster():
    mount = CameraMount.from_body_pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    box = PersonBox.from_radar(np.array([3.0, 0.0, 0.0]), CAMERA, mount)
    assert box.u == pytest.approx(CAMERA.cx) and box.v == pytest.approx(CAMERA.cy)
    # the 2 m tall block's near face (2.6 m away) spans 2 m * f / 2.6 m, times the margin
    assert box.size == pytest.approx(2.0 * CAMERA.fy / 2.6 * 1.25, rel=1e-6)
    left = PersonBox.from_radar(np.array([3.0, 1.0, 0.0]), CAMERA, mount)
    assert left.u < box.u                                               # radar +y is the image's left
    assert PersonBox.from_radar(np.array([-3.0, 0.0, 0.0]), CAMERA, mount) is None   # behind the camera
    assert PersonBox.from_radar(np.array([3.0, 30.0, 0.0]), CAMERA, mount) is None   # far out of view
    assert PersonBox.around(10, 20, 110, 420).size == pytest.approx(500.0)
    with pytest.raises(ValueError):
        PersonBox.around(10, 20, 5, 420)


def test_crop_puts_the_box_centre_at_the_crop_centre_and_maps_back():
    image = np.zeros((480, 640, 3), np.uint8)
    image[300:304, 400:404] = 255                 # a 4-pixel white square centred on (401.5, 301.5)
    box = PersonBox(401.5, 301.5, 64.0)           # 4x zoom
    crop = crop_images(torch.from_numpy(image[None]), [box])
    assert crop.shape == (1, 3, INPUT_SIZE, INPUT_SIZE)
    red = crop[0, 0] * STD[0] + MEAN[0]
    bright = torch.nonzero(red > 0.5).float()
    centre = bright.mean(0).flip(0).numpy()       # (x, y) in crop pixels
    assert np.allclose(centre, (INPUT_SIZE - 1) / 2, atol=0.5)
    assert 14 <= len(bright) ** 0.5 <= 18         # 4 image pixels -> 16 crop pixels across
    assert np.allclose(box.to_image(centre.copy()), [401.5, 301.5], atol=0.2)
    # outside the image is black: a crop off the corner is mostly (0 - mean) / std
    corner = crop_images(torch.from_numpy(image[None]), [PersonBox(-500.0, -500.0, 100.0)])
    assert torch.allclose(corner[0, 1], torch.full((INPUT_SIZE, INPUT_SIZE), -MEAN[1] / STD[1]))


def image_message(encoding: str, pixels: np.ndarray, padding: int = 0):
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    step = rows.shape[1] + padding
    data = np.zeros((height, step), np.uint8)
    data[:, :rows.shape[1]] = rows
    return SimpleNamespace(encoding=encoding, height=height, width=width, step=step, data=data.tobytes())


def test_image_encodings_decode_to_rgb():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    alpha = np.full((5, 6, 1), 7, np.uint8)
    assert np.array_equal(image_to_rgb(image_message("rgb8", rgb, padding=3)), rgb)
    assert np.array_equal(image_to_rgb(image_message("bgr8", rgb[..., ::-1])), rgb)
    assert np.array_equal(image_to_rgb(image_message("rgba8", np.concatenate([rgb, alpha], 2))), rgb)
    assert np.array_equal(image_to_rgb(image_message("bgra8", np.concatenate([rgb[..., ::-1], alpha], 2))), rgb)
    grey = rgb[..., 0]
    assert np.array_equal(image_to_rgb(image_message("mono8", grey)), np.repeat(grey[..., None], 3, 2))
    # YUYV of a mid grey (Y 126, U V 128) and of pure red (BT.601: Y 81, U 90, V 240)
    yuyv = np.array([[[126, 128, 126, 128], [81, 90, 81, 240]]], np.uint8)
    decoded = image_to_rgb(SimpleNamespace(encoding="yuv422_yuy2", height=1, width=4, step=8, data=yuyv.tobytes()))
    assert np.abs(decoded[0, :2].astype(int) - 128).max() <= 1
    assert decoded[0, 2, 0] >= 250 and decoded[0, 2, 1:].max() <= 5


@pytest.mark.parametrize("message, words", [
    (SimpleNamespace(encoding="bayer_rggb8", height=2, width=2, step=2, data=b"\0" * 4), "not supported"),
    (SimpleNamespace(encoding="rgb8", height=2, width=2, step=6, data=b"\0" * 7), "needs 12"),
    (SimpleNamespace(encoding="rgb8", height=2, width=2, step=4, data=b"\0" * 12), "shorter than a row"),
    (SimpleNamespace(encoding="rgb8", height=0, width=2, step=6, data=b""), "empty"),
])
def test_bad_images_are_refused_with_a_reason(message, words):
    with pytest.raises(ImageError, match=words):
        image_to_rgb(message)


def test_camera_info_without_calibration_is_refused():
    info = SimpleNamespace(k=[0.0] * 9, width=640, height=480)
    with pytest.raises(ImageError, match="calibrat"):
        camera_from_info(info)
    info.k = CAMERA.matrix.reshape(-1).tolist()
    assert camera_from_info(info) == CAMERA


def test_images_and_camera_info_round_trip_through_a_bag(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with BagWriter(tmp_path / "bag") as writer:
        writer.write_image("/camera/image_raw", 5 * 10**9, "camera_optical_frame", image)
        writer.write_camera_info("/camera/camera_info", 5 * 10**9, "camera_optical_frame", CAMERA)
    with BagReader(tmp_path / "bag") as reader:
        (_, _, picture), (_, _, info) = sorted(reader.messages(["/camera/image_raw", "/camera/camera_info"]),
                                               key=lambda item: item[0], reverse=True)
    assert np.array_equal(picture.image, image) and picture.stamp_ns == 5 * 10**9
    assert info.camera == CAMERA and info.frame_id == "camera_optical_frame"


# -- the offline labeller, end to end with the BlazePose backend on real photographs ---------------------

def astronaut_bag(path, frames: int = 3, broken: bool = False):
    """A recording session: the astronaut photograph as the camera's images, its calibration, the
    camera 1.2 m above the radar and 0.1 m to its left, level, a radar cloud and radar_ingest's
    person cloud per image, and an old teacher skeleton topic that labelling replaces."""
    from skimage.data import astronaut

    image = astronaut()
    camera = PinholeCamera.from_field_of_view(512, 512, math.radians(60))
    mount = CameraMount.from_body_pose([0.0, 0.1, 1.2], [0.0, 0.0, 0.0])
    with BagWriter(path) as writer:
        writer.write_static_transforms(10**9, [Transform(topics.RADAR_FRAME, "camera_optical_frame",
                                                         mount.translation, mount.quaternion)])
        for k in range(frames):
            stamp = 10**9 + k * 10**8
            writer.write_image("/camera/image_raw", stamp, "camera_optical_frame", image)
            writer.write_camera_info("/camera/camera_info", stamp, "camera_optical_frame", camera)
            cloud = np.array([[2.0, 0.0, 0.5, 0.1, 20.0]] * 4, np.float32)
            writer.write_cloud(topics.RADAR_POINTS, stamp, topics.RADAR_FRAME, cloud)
            writer.write_cloud(topics.POINTS, stamp, topics.RADAR_FRAME, cloud)    # radar_ingest's person
            writer.write_skeleton(topics.TEACHER_SKELETON, stamp, topics.RADAR_FRAME, np.zeros((24, 3)))
        if broken:
            writer.write_raw("/camera/image_raw", "sensor_msgs/msg/Image", 2 * 10**9, b"\0\1\0\0garbage")
    return mount


@pytest.fixture(scope="module")
def blazepose():
    pytest.importorskip("mediapipe")
    from ros2_radar_pose.teacher.backends import make_backend

    backend = make_backend("blazepose")
    yield backend
    backend.close()


def test_labelling_writes_radar_topics_and_teacher_skeletons_without_images(tmp_path, blazepose):
    from ros2_radar_pose.body.joint_sets import SMPL_24
    from ros2_radar_pose.teacher.labeller import label_bag

    astronaut_bag(tmp_path / "session", broken=True)
    seen = []
    report = label_bag(tmp_path / "session", tmp_path / "labelled", blazepose, batch_size=2, progress=seen.append)
    assert (report.images, report.labelled, report.no_person, report.radar_boxes) == (3, 3, 0, 3)
    assert sum(seen) == 4                                     # three images and the broken one
    assert any("image at 2.000 s skipped" in problem for problem in report.problems)
    with BagReader(tmp_path / "labelled") as reader:
        assert "/camera/image_raw" not in reader.topics
        assert reader.topics[topics.RADAR_POINTS].count == 3 and topics.TF_STATIC in reader.topics
        skeletons = list(reader.skeletons(topics.TEACHER_SKELETON))
    assert [s.stamp_ns for s in skeletons] == [10**9, 10**9 + 10**8, 10**9 + 2 * 10**8]
    positions = skeletons[0].positions
    assert skeletons[0].frame_id == topics.RADAR_FRAME and positions.shape == (24, 3)
    assert not np.allclose(positions, 0.0)                    # the old labels were replaced
    joint = SMPL_24.index
    # In the radar frame (x forward, y left, z up): the person stands in front, head above pelvis,
    # and, facing the camera, her left shoulder is on the radar's right (smaller y).
    assert 0.5 < positions[joint("pelvis"), 0] < 10.0
    assert positions[joint("head"), 2] > positions[joint("pelvis"), 2] + 0.3
    assert positions[joint("left_shoulder"), 1] < positions[joint("right_shoulder"), 1]
    # the radar's person at 2 m placed the root: the pelvis is just behind the body's front
    assert 2.0 < positions[joint("pelvis"), 0] < 2.3 and abs(positions[joint("pelvis"), 1]) < 0.1


def test_labelling_a_bag_without_images_says_what_it_has(tmp_path, blazepose):
    from ros2_radar_pose.teacher.labeller import LabelError, label_bag

    with BagWriter(tmp_path / "radar") as writer:
        writer.write_cloud(topics.RADAR_POINTS, 10**9, topics.RADAR_FRAME, np.zeros((3, 5), np.float32))
    with pytest.raises(LabelError, match="no sensor_msgs/Image topic /camera/image_raw.*/radar/points"):
        label_bag(tmp_path / "radar", tmp_path / "out", blazepose)


@pytest.mark.parametrize("kwargs, words", [
    ({"name": "openpose"}, "unknown teacher backend 'openpose'"),
    ({"name": "hybrik"}, "needs the SMPL model file.*smpl.is.tue.mpg.de"),
    ({"name": "hybrik", "smpl_model": "/nonexistent/SMPL_NEUTRAL.pkl"}, "needs its checkpoint.*Jeff-sjtu/HybrIK"),
    ({"name": "hybrik", "smpl_model": "/x.pkl", "hybrik_checkpoint": "/nonexistent/res34.pth"}, "/nonexistent/res34"),
])
def test_a_backend_that_cannot_be_built_says_which_file_is_missing(kwargs, words):
    from ros2_radar_pose.teacher.backends import make_backend

    with pytest.raises(ValueError, match=words):
        make_backend(**kwargs)


def test_cli_label_writes_the_labelled_bag_and_says_what_it_did(tmp_path, blazepose, capsys):
    from ros2_radar_pose.cli import main

    astronaut_bag(tmp_path / "session", frames=2)
    with pytest.raises(SystemExit) as exit_:
        main(["label", str(tmp_path / "session"), "--out", str(tmp_path / "labelled"), "--device", "cpu"])
    assert exit_.value.code == 0
    assert "2 images, 2 labelled, 0 without a person, 2 boxed by the radar" in capsys.readouterr().out
    with BagReader(tmp_path / "labelled") as reader:
        assert reader.topics[topics.TEACHER_SKELETON].count == 2
    # the camera's mount given on the command line wins over the bag's: 1 m further left
    with pytest.raises(SystemExit) as exit_:
        main(["label", str(tmp_path / "session"), "--out", str(tmp_path / "moved"), "--device", "cpu",
              "--camera-xyz", "0", "1.1", "1.2", "--radar-topic", "none"])
    assert exit_.value.code == 0
    with BagReader(tmp_path / "labelled") as a, BagReader(tmp_path / "moved") as b:
        shift = next(b.skeletons()).positions - next(a.skeletons()).positions
    assert shift[:, 1].mean() > 0.5
    with pytest.raises(SystemExit) as exit_:
        main(["label", str(tmp_path / "session"), "--out", str(tmp_path / "labelled")])
    assert exit_.value.code == 1 and "exists" in capsys.readouterr().err
