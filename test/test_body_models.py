"""Body models: the built-in anthropometric skeleton, SMPL through smplx from real file layouts,
and the errors a user sees for missing, wrong, truncated or chumpy-only files."""
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch
from smpl_synthetic import JOINT_VERTEX, synthetic_smpl_arrays

from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.kinematics import forward_kinematics
from ros2_radar_pose.body.limits import random_pose
from ros2_radar_pose.body.models import AnthropometricBody, SMPLBody, load_body_model
from ros2_radar_pose.body.smpl_file import SMPLFileError, convert_smpl_to_npz, load_smpl_arrays

J = HYBRIK_29.index


@pytest.fixture(scope="module")
def smpl_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("smpl") / "smpl_neutral.npz"
    np.savez(path, **synthetic_smpl_arrays())
    return path


def test_anthropometric_proportions_at_average_shape():
    rest = AnthropometricBody().rest_joints(torch.zeros(1, 4))[0]
    assert rest[J("head_top"), 1] == pytest.approx(1.70)
    assert rest[J("left_knee"), 1] == pytest.approx(0.285 * 1.70)
    assert rest[J("left_shoulder"), 1] == pytest.approx(0.815 * 1.70)
    # Upper arm 0.186 H and forearm 0.146 H (Drillis and Contini), along x in the T-pose.
    assert (rest[J("left_elbow")] - rest[J("left_shoulder")]).norm() == pytest.approx(0.186 * 1.70, abs=0.01)
    assert (rest[J("left_wrist")] - rest[J("left_elbow")]).norm() == pytest.approx(0.146 * 1.70, abs=1e-6)
    # Left is +x, right mirrors it; the feet stand on the floor.
    assert rest[J("left_hip"), 0] > 0 and rest[J("right_hip"), 0] == -rest[J("left_hip"), 0]
    assert 0 <= rest[:, 1].min() < 0.02


def test_anthropometric_shape_coefficients_do_what_they_say():
    body = AnthropometricBody()
    betas = torch.tensor([[0.0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    rest = body.rest_joints(betas)
    head = rest[:, J("head_top"), 1]
    assert head[1] == pytest.approx(1.80) and torch.allclose(head[2:], head[0])     # height, kept
    width = rest[:, J("left_shoulder"), 0] - rest[:, J("right_shoulder"), 0]
    assert width[2] == pytest.approx(width[0] * 1.08)                             # breadth
    leg = rest[:, J("left_hip"), 1] - rest[:, J("left_ankle"), 1]
    trunk = rest[:, J("head_top"), 1] - rest[:, J("left_hip"), 1]
    assert leg[3] == pytest.approx(leg[0] * 1.04) and trunk[3] < trunk[0]           # legs
    arm = (rest[:, J("left_wrist")] - rest[:, J("left_shoulder")]).norm(dim=-1)
    assert arm[4] == pytest.approx(arm[0] * 1.05)                                 # arms
    masses, radii = body.segment_masses(betas), body.segment_radii(betas)
    assert torch.allclose(masses[0].sum(), 23.0 * body.height(betas[:1]) ** 2)
    assert masses[2].sum() > masses[0].sum() and radii[2, 1] == pytest.approx(radii[0, 1] * 1.08)
    assert body.segment_masses(betas, body_mass=80.0).sum(dim=1).allclose(torch.full((5,), 80.0, dtype=torch.float64))


def test_betas_of_other_lengths_are_padded_or_cut():
    body = AnthropometricBody()
    ten = torch.zeros(2, 10)
    ten[:, 0] = 1.0
    ten[:, 7] = 5.0                                 # ignored: the built-in body has 4 coefficients
    assert torch.equal(body.rest_joints(ten), body.rest_joints(torch.tensor([[1.0], [1.0]])))


def test_anthropometric_body_has_no_mesh():
    with pytest.raises(NotImplementedError, match="give a SMPL model file"):
        AnthropometricBody().vertices(torch.zeros(1, 4), torch.eye(3).expand(1, 24, 3, 3))


def test_smpl_npz_loads_through_smplx_with_leaves_from_vertices(smpl_npz):
    arrays = synthetic_smpl_arrays()
    body = load_body_model(smpl_npz)
    assert isinstance(body, SMPLBody) and body.has_mesh and body.num_betas == 10
    betas = torch.zeros(1, 10, dtype=torch.float64)
    rest = body.rest_joints(betas)[0].numpy()
    np.testing.assert_allclose(rest[:24], arrays["v_template"][JOINT_VERTEX:JOINT_VERTEX + 24], atol=1e-12)
    np.testing.assert_allclose(rest[24:], arrays["v_template"][[411, 2445, 5905, 3216, 6617]], atol=1e-12)
    betas[0, 0] = 2.0                                # shapedirs[..., 0] scales the body by 5 % a unit
    np.testing.assert_allclose(body.rest_joints(betas)[0].numpy(), rest * 1.1, atol=0.05)
    assert body.height(betas) > body.height(torch.zeros(1, 10))


def test_smpl_vertices_follow_their_joints_rigidly(smpl_npz):
    arrays = synthetic_smpl_arrays()
    body = SMPLBody(smpl_npz)
    betas = torch.zeros(2, 10, dtype=torch.float64)
    rotations = random_pose(2, torch.Generator().manual_seed(1))
    translation = torch.tensor([[0.5, 0.0, 2.0], [-1.0, 0.3, 0.0]], dtype=torch.float64)
    pose = body(betas, rotations, translation)
    rest = body.rest_joints(betas)
    owner = arrays["weights"].argmax(axis=1)
    # Each vertex is skinned to one joint and pose blend shapes are zero: v = G_j (v0 - r_j) + p_j
    # (v0 as smplx holds it: its loader rounds the file's arrays to float32).
    template = body.smpl.v_template
    offsets = (template - rest[:, owner])[..., None]
    expected = (pose.global_rotations[:, owner] @ offsets)[..., 0] + pose.joints[:, owner]
    torch.testing.assert_close(pose.vertices, expected, atol=1e-10, rtol=0)
    # smplx's own joints (its J_regressor on the posed rest) agree with our forward kinematics.
    np.testing.assert_allclose(pose.vertices[:, JOINT_VERTEX:JOINT_VERTEX + 24], pose.joints[:, :24], atol=1e-10)


def test_official_pickle_layout_with_sparse_regressor_loads(tmp_path):
    arrays = synthetic_smpl_arrays()
    official = dict(arrays, J_regressor=scipy.sparse.csc_matrix(arrays["J_regressor"]),
                    posedirs=arrays["posedirs"], bs_style="lbs", bs_type="lrotmin")
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(pickle.dumps(official, protocol=2))
    loaded = load_smpl_arrays(path)
    np.testing.assert_array_equal(loaded["J_regressor"], arrays["J_regressor"])
    assert SMPLBody(path).rest_joints(torch.zeros(1, 10)).shape == (1, 29, 3)
    converted = tmp_path / "smpl.npz"
    convert_smpl_to_npz(path, converted)
    np.testing.assert_array_equal(load_smpl_arrays(converted)["v_template"], arrays["v_template"])


def test_missing_file_says_where_smpl_comes_from(tmp_path):
    with pytest.raises(SMPLFileError, match=r"does not exist.*smpl\.is\.tue\.mpg\.de"):
        load_body_model(tmp_path / "nope.pkl")


def test_truncated_file_is_one_clear_error(tmp_path, smpl_npz):
    for name, data in [("cut.npz", smpl_npz.read_bytes()[:5000]),
                       ("cut.pkl", pickle.dumps(synthetic_smpl_arrays(), protocol=2)[:5000])]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SMPLFileError, match="truncated or not a SMPL file"):
            load_smpl_arrays(tmp_path / name)


def test_smplx_or_wrong_arrays_are_named(tmp_path):
    arrays = synthetic_smpl_arrays()
    np.savez(tmp_path / "smplx.npz", **dict(arrays, v_template=np.zeros((10475, 3))))
    with pytest.raises(SMPLFileError, match=r"'v_template' .* shape \(10475, 3\), SMPL's is \(6890, 3\)"):
        load_smpl_arrays(tmp_path / "smplx.npz")
    np.savez(tmp_path / "nojr.npz", **{k: v for k, v in arrays.items() if k != "J_regressor"})
    with pytest.raises(SMPLFileError, match="has no 'J_regressor'"):
        load_smpl_arrays(tmp_path / "nojr.npz")
    np.savez(tmp_path / "nan.npz", **dict(arrays, v_template=np.full((6890, 3), np.nan)))
    with pytest.raises(SMPLFileError, match="NaN"):
        load_smpl_arrays(tmp_path / "nan.npz")


class Ch:
    """Stands in for chumpy.ch.Ch, whose array is its ``r``."""

    def __init__(self, r):
        self.r = r


Ch.__module__ = "chumpy.ch"


def test_chumpy_pickle_is_refused_with_the_way_out(tmp_path, monkeypatch):
    # A pickle whose arrays are chumpy objects, made with a stand-in chumpy module.
    module = types.ModuleType("chumpy.ch")
    module.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", module)
    arrays = synthetic_smpl_arrays()
    path = tmp_path / "chumpy.pkl"
    path.write_bytes(pickle.dumps(dict(arrays, shapedirs=Ch(arrays["shapedirs"])), protocol=2))
    with pytest.raises(SMPLFileError, match=r"chumpy objects.*radar-pose smpl-to-npz"):
        SMPLBody(path)
    # Where chumpy imports, the converter makes a plain .npz of it.
    convert_smpl_to_npz(path, tmp_path / "plain.npz")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    np.testing.assert_array_equal(load_smpl_arrays(tmp_path / "plain.npz")["shapedirs"], arrays["shapedirs"])


def test_a_pickle_that_would_run_code_is_not_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this ran",))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(SMPLFileError, match=r"builtins\.print, which no SMPL file needs"):
        load_smpl_arrays(path)


def test_both_models_pose_through_the_same_forward_kinematics(smpl_npz):
    rotations = random_pose(3, torch.Generator().manual_seed(2))
    for body, betas in [(AnthropometricBody(), torch.randn(3, 4, dtype=torch.float64)),
                        (SMPLBody(smpl_npz), torch.randn(3, 10, dtype=torch.float64))]:
        pose = body(betas, rotations)
        joints, _ = forward_kinematics(rotations, body.rest_joints(betas))
        torch.testing.assert_close(pose.joints, joints)
        # Bone lengths are those of the rest pose: rotations do not stretch bones.
        for parent, child in HYBRIK_29.bones:
            rest = body.rest_joints(betas)
            torch.testing.assert_close((pose.joints[:, child] - pose.joints[:, parent]).norm(dim=-1),
                                       (rest[:, child] - rest[:, parent]).norm(dim=-1))


def test_cli_smpl_to_npz(tmp_path):
    from ros2_radar_pose.cli import main

    source = tmp_path / "smpl.pkl"
    source.write_bytes(pickle.dumps(synthetic_smpl_arrays(), protocol=2))
    with pytest.raises(SystemExit) as done:
        main(["smpl-to-npz", str(source), str(tmp_path / "smpl.npz")])
    assert done.value.code == 0 and load_smpl_arrays(tmp_path / "smpl.npz")["f"].shape == (13776, 3)
    with pytest.raises(SystemExit) as failed:
        main(["smpl-to-npz", str(tmp_path / "missing.pkl"), str(tmp_path / "x.npz")])
    assert failed.value.code == 1
