"""Streaming inference: each push is the model's prediction for the newest frame of the window."""
import numpy as np
import pytest
import torch

from ros2_radar_pose.body import hybrik_ik, kinematics, rotations
from ros2_radar_pose.body.hybrik_ik import BONE_CHILD, inverse_kinematics
from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.body.rotations import geodesic_distance, quaternion_to_matrix
from ros2_radar_pose.student.inputs import pack_cloud
from ros2_radar_pose.student.model import RadarPoseStudent, StudentConfig
from ros2_radar_pose.student.streaming import StreamingStudent

CONFIG = StudentConfig(window=6, dim=32, depth=2, heads=2, nb_features=16, point_layers=2, dropout=0.0)


def student(config=CONFIG, seed=0):
    torch.manual_seed(seed)
    model = RadarPoseStudent(config)
    with torch.no_grad():     # statistics of a plausible room, so the input is not all near zero
        model.set_statistics(torch.tensor([0.0, 3.0, 1.0, 0.0, 20.0]), torch.tensor([1.0, 1.5, 0.6, 1.0, 8.0]),
                             torch.tensor([0.0, 3.0, 1.0]))
    return model.eval()


def clouds(count, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 80, count)                  # some over 64
    sizes[2::5] = 0                                     # frames the radar saw nothing in
    return [np.column_stack([rng.normal([0, 3, 1], 0.4, (n, 3)), rng.normal(0, 0.5, n), rng.uniform(5, 40, n)])
            .astype(np.float32) for n in sizes]


def by_hand(model, body, history):
    """The model on the last W clouds, packed one by one, empty frames in front; the newest frame's
    joints (J, 3) and global rotations (24, 3, 3) by IK and the body's own forward."""
    config = model.config
    window = history[-config.window:]
    points = np.zeros((config.window, config.max_points, 5), np.float32)
    mask = np.zeros((config.window, config.max_points), bool)
    for t, cloud in enumerate(window, start=config.window - len(window)):
        points[t], mask[t] = pack_cloud(cloud, config.max_points)
    with torch.no_grad():
        pose = model(torch.from_numpy(points)[None], torch.from_numpy(mask)[None])
        if not config.rotations:
            return pose.joints[0, -1], None
        betas = pose.betas[0, -1:].double()
        rest = body.rest_joints(betas)
        local = inverse_kinematics(pose.joints29[0, -1:].double(), pose.twist[0, -1:].double(), rest).local_rotations
        return pose.joints[0, -1], body(betas, local).global_rotations[0]


def test_push_is_the_models_newest_frame_before_and_after_the_window_fills():
    model, body = student(), AnthropometricBody()
    streamer, history = StreamingStudent(model, body), []
    for cloud in clouds(3 * CONFIG.window):
        frame = streamer.push(cloud)
        history.append(cloud)
        joints, rotations = by_hand(model, body, history)
        assert frame.positions.shape == (24, 3) and frame.rotations.shape == (24, 4)
        np.testing.assert_allclose(frame.positions, joints.double().numpy(), atol=1e-5)
        # float32 rounding (one frame encoded vs W) moves short predicted bones by ~1e-5 rad
        pushed = quaternion_to_matrix(torch.from_numpy(frame.rotations))
        assert geodesic_distance(pushed, rotations).max() < 1e-4


def test_the_window_has_points_until_a_window_of_empty_frames():
    streamer = StreamingStudent(student(), AnthropometricBody())
    empty = np.zeros((0, 5), np.float32)
    assert not streamer.window_has_points
    streamer.push(empty)
    assert not streamer.window_has_points
    streamer.push(clouds(2)[1])
    for _ in range(CONFIG.window - 1):
        streamer.push(empty)
        assert streamer.window_has_points
    streamer.push(empty)
    assert not streamer.window_has_points
    streamer.push(clouds(2)[1])
    streamer.reset()
    assert not streamer.window_has_points


def test_reset_forgets_the_past():
    model = student()
    streamer, fresh = StreamingStudent(model, AnthropometricBody()), StreamingStudent(model, AnthropometricBody())
    for cloud in clouds(10, seed=1):
        streamer.push(cloud)
    streamer.reset()
    for cloud in clouds(4, seed=2):
        old, new = streamer.push(cloud), fresh.push(cloud)
        np.testing.assert_allclose(old.positions, new.positions, atol=1e-6)
        np.testing.assert_allclose(old.rotations, new.rotations, atol=1e-6)


def test_rotations_are_unit_quaternions_that_aim_each_bone_at_its_predicted_child():
    # The adaptive IK swings each rest bone onto the predicted child as seen from the joint it has
    # placed, so posing the rest skeleton by the pushed rotations must reproduce those directions.
    model, body = student(seed=1), AnthropometricBody()
    streamer, history = StreamingStudent(model, body), []
    for cloud in clouds(8, seed=3):
        frame = streamer.push(cloud)
        history.append(cloud)
    np.testing.assert_allclose(np.linalg.norm(frame.rotations, axis=-1), 1.0, atol=1e-6)
    config = model.config
    points, mask = map(np.stack, zip(*(pack_cloud(c, config.max_points) for c in history[-config.window:])))
    with torch.no_grad():
        pose = model(torch.from_numpy(points)[None], torch.from_numpy(mask)[None])
    targets = pose.joints29[0, -1].double()
    rest = body.rest_joints(pose.betas[0, -1:].double())[0]
    rotations = quaternion_to_matrix(torch.from_numpy(frame.rotations))              # (24, 3, 3) global
    placed = [targets[0]]                            # the root on its target, the rest posed from it
    for joint, parent in enumerate(HYBRIK_29.parents[1:], start=1):
        placed.append(placed[parent] + rotations[parent] @ (rest[joint] - rest[parent]))
    for joint, child in BONE_CHILD.items():
        aim = torch.nn.functional.normalize(targets[child] - placed[joint], dim=0)
        posed = torch.nn.functional.normalize(rotations[joint] @ (rest[child] - rest[joint]), dim=0)
        assert float(aim @ posed) > 1 - 1e-8, HYBRIK_29.names[joint]


def test_a_joint_set_without_rotations_gives_none():
    config = StudentConfig(**{**CONFIG.__dict__, "joint_set": "mars_19", "rotations": False})
    model = student(config)
    streamer, history = StreamingStudent(model), []
    assert streamer.body is None
    for cloud in clouds(8, seed=4):
        frame = streamer.push(cloud)
        history.append(cloud)
        assert frame.rotations is None and frame.positions.shape == (19, 3)
    np.testing.assert_allclose(frame.positions, by_hand(model, None, history)[0].double().numpy(), atol=1e-5)


@pytest.mark.parametrize("case", ["some_nan", "all_nan", "inf", "empty"])
def test_bad_points_never_reach_the_output(case):
    streamer = StreamingStudent(student(), AnthropometricBody())
    for cloud in clouds(8, seed=5):
        if case == "some_nan":
            cloud[::3, [0, 4][len(cloud) % 2]] = np.nan
        elif case == "all_nan":
            cloud[:] = np.nan
        elif case == "inf":
            cloud[::2, 3] = np.inf
        else:
            cloud = cloud[:0]
        frame = streamer.push(cloud)
        assert np.isfinite(frame.positions).all() and np.isfinite(frame.rotations).all()
        np.testing.assert_allclose(np.linalg.norm(frame.rotations, axis=-1), 1.0, atol=1e-6)


def test_streaming_leaves_the_ik_usable_with_gradients():
    # push runs in inference mode; the IK's cached constants must still be ordinary tensors after it
    hybrik_ik._indices.cache_clear()
    rotations._constants.cache_clear()
    kinematics._parent_index.cache_clear()
    StreamingStudent(student(), AnthropometricBody()).push(clouds(1)[0])
    rest = AnthropometricBody().rest_joints(torch.zeros(1, 4))
    targets = (rest + 0.01).requires_grad_()
    twist = torch.tensor([1.0, 0.0], dtype=torch.float64).repeat(1, 23, 1)
    inverse_kinematics(targets, twist, rest).local_rotations.sum().backward()
    assert torch.isfinite(targets.grad).all()


def test_the_traced_push_equals_the_eager_one_and_sees_weights_changed_in_place():
    model, body = student(seed=2), AnthropometricBody()
    traced, eager = StreamingStudent(model, body), StreamingStudent(model, body, traced=False)
    assert isinstance(traced._newest, torch.jit.ScriptModule) and not isinstance(eager._newest, torch.jit.ScriptModule)

    def same(a, b):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-5)
        angle = geodesic_distance(quaternion_to_matrix(torch.from_numpy(a.rotations)),
                                  quaternion_to_matrix(torch.from_numpy(b.rotations)))
        assert float(angle.max()) < 1e-4

    stream = clouds(2 * CONFIG.window, seed=6)
    for cloud in stream[:CONFIG.window]:
        same(traced.push(cloud), eager.push(cloud))
    with torch.no_grad():          # in place, as load_state_dict does: half a metre the eager push sees
        model.root_head.bias.add_(torch.tensor([0.5, 0.0, 0.0]))
    traced.reset(), eager.reset()
    for cloud in stream[CONFIG.window:]:
        same(traced.push(cloud), eager.push(cloud))


def test_a_module_that_cannot_be_traced_runs_eagerly_with_a_warning(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("no tracing here")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    model = student()
    with pytest.warns(RuntimeWarning, match="no tracing here"):
        streamer = StreamingStudent(model, AnthropometricBody())
    history = []
    for cloud in clouds(4, seed=7):
        frame = streamer.push(cloud)
        history.append(cloud)
    np.testing.assert_allclose(frame.positions, by_hand(model, AnthropometricBody(), history)[0].double().numpy(),
                               atol=1e-5)


def test_the_traced_push_with_an_smpl_body_equals_the_eager_one(tmp_path):
    from smpl_synthetic import synthetic_smpl_arrays

    from ros2_radar_pose.body.models import SMPLBody

    np.savez(tmp_path / "smpl.npz", **synthetic_smpl_arrays())
    model, body = student(seed=3), SMPLBody(tmp_path / "smpl.npz")
    traced, eager = StreamingStudent(model, body), StreamingStudent(model, body, traced=False)
    assert isinstance(traced._newest, torch.jit.ScriptModule)
    for cloud in clouds(CONFIG.window + 2, seed=8):
        ours, theirs = traced.push(cloud), eager.push(cloud)
        np.testing.assert_allclose(ours.positions, theirs.positions, atol=1e-5)
        np.testing.assert_allclose(np.abs((ours.rotations * theirs.rotations).sum(-1)), 1.0, atol=1e-6)
