"""HybrIK's ResNet-34 network: official checkpoints load strictly, errors name the file, integral
regression and the camera model give known answers, and the backend's skeleton is the IK's."""
import numpy as np
import pytest
import torch
from smpl_synthetic import synthetic_smpl_arrays
from torch import nn

from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.body.models import AnthropometricBody, SMPLBody
from ros2_radar_pose.teacher.camera import PinholeCamera
from ros2_radar_pose.teacher.crop import PersonBox, crop_images
from ros2_radar_pose.teacher.hybrik import (
    HybrIKBackend,
    HybrIKCheckpointError,
    HybrIKNet,
    integral_coordinates,
    load_hybrik,
    run_network,
    virtual_to_camera,
)

CAMERA = PinholeCamera(1000.0, 1000.0, 319.5, 239.5, 640, 480)


def official_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of the official ResNet-34 Simple3DPoseBaseSMPLCam state dict and its shape, written
    from the official architecture (hybrik/models/simple3dposeSMPLWithCam.py, layers/Resnet.py,
    layers/smpl/SMPL.py and the res34 cam config), not from HybrIKNet."""
    shapes = {}

    def bn(name, c):
        shapes.update({f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),
                       f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()})

    shapes["preact.conv1.weight"] = (64, 3, 7, 7)
    bn("preact.bn1", 64)
    c_in = 64
    for stage, (c, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for block in range(blocks):
            name = f"preact.layer{stage}.{block}"
            shapes[f"{name}.conv1.weight"] = (c, c_in, 3, 3)
            bn(f"{name}.bn1", c)
            shapes[f"{name}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{name}.bn2", c)
            if block == 0 and stage > 1:
                shapes[f"{name}.downsample.0.weight"] = (c, c_in, 1, 1)
                bn(f"{name}.downsample.1", c)
            c_in = c
    for index, c_in in zip((0, 3, 6), (512, 256, 256)):
        shapes[f"deconv_layers.{index}.weight"] = (c_in, 256, 4, 4)        # ConvTranspose2d: (in, out, k, k)
        bn(f"deconv_layers.{index + 1}", 256)
    shapes.update({"final_layer.weight": (29 * 64, 256, 1, 1), "final_layer.bias": (29 * 64,)})
    for name, (n_out, n_in) in {"fc1": (1024, 512), "fc2": (1024, 1024), "decshape": (10, 1024),
                                "decphi": (46, 1024), "deccam": (3, 1024), "decsigma": (29, 1024)}.items():
        shapes.update({f"{name}.weight": (n_out, n_in), f"{name}.bias": (n_out,)})
    shapes.update({"init_shape": (10,), "init_cam": (3,)})
    shapes.update({"smpl.faces_tensor": (13776, 3), "smpl.v_template": (6890, 3), "smpl.shapedirs": (6890, 3, 10),
                   "smpl.posedirs": (207, 20670), "smpl.J_regressor": (24, 6890),
                   "smpl.J_regressor_h36m": (17, 6890), "smpl.parents": (29,), "smpl.children_map": (29,),
                   "smpl.lbs_weights": (6890, 24)})
    return shapes


INTEGER_KEYS = ("num_batches_tracked", "smpl.faces_tensor", "smpl.parents", "smpl.children_map")


def random_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the official names: weights scaled by fan-in so activations stay finite
    through the network, batch-norm statistics near the identity, integer buffers as integers."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in official_shapes().items():
        if name.endswith(INTEGER_KEYS):
            state[name] = torch.randint(0, 100, shape, generator=g)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=g)
        elif name.endswith(".weight") and len(shape) == 1:              # batch-norm scale
            state[name] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2 and not name.startswith("smpl."):
            fan_in = shape[0] * shape[2] * shape[3] if name.startswith("deconv") else np.prod(shape[1:])
            state[name] = torch.randn(shape, generator=g) / float(np.sqrt(fan_in))
        else:
            state[name] = 0.1 * torch.randn(shape, generator=g)
    state["final_layer.weight"] *= 20.0          # peaked heatmaps, so joints spread over the crop
    for head in ("decshape", "decphi", "deccam", "decsigma"):
        state[f"{head}.weight"] *= 0.02          # a camera scale near 0.9, unsaturated sigmas
    return state


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, torch.Tensor]:
    return random_checkpoint()


@pytest.fixture(scope="module")
def net(tmp_path_factory, checkpoint) -> HybrIKNet:
    path = tmp_path_factory.mktemp("hybrik") / "random.pth"
    torch.save(checkpoint, path)
    return load_hybrik(path)


@pytest.fixture(scope="module")
def smpl_body(tmp_path_factory):
    path = tmp_path_factory.mktemp("smpl") / "smpl.npz"
    np.savez(path, **synthetic_smpl_arrays())
    return SMPLBody(path)


@pytest.mark.parametrize("wrap", ["raw", "model", "data_parallel"])
def test_an_official_state_dict_loads_strictly_with_the_files_weights(tmp_path, checkpoint, wrap):
    state = {"raw": checkpoint, "model": {"model": checkpoint, "epoch": 200},
             "data_parallel": {f"module.{k}": v for k, v in checkpoint.items()}}[wrap]
    path = tmp_path / "hybrik.pth"
    torch.save(state, path)
    net = load_hybrik(path)
    assert not net.training and net.has_sigma
    assert set(net.state_dict()) == set(official_shapes())
    loaded = net.state_dict()
    for key in ("final_layer.weight", "preact.layer3.0.downsample.1.running_var", "smpl.posedirs",
                "init_shape", "decsigma.bias", "smpl.children_map"):
        torch.testing.assert_close(loaded[key], checkpoint[key], rtol=0, atol=0)


def test_a_checkpoint_without_the_sigma_head_loads_with_constant_confidence(tmp_path, checkpoint):
    path = tmp_path / "no_sigma.pth"
    torch.save({k: v for k, v in checkpoint.items() if not k.startswith("decsigma.")}, path)
    net = load_hybrik(path)
    assert not net.has_sigma
    with torch.inference_mode():
        out = net(torch.randn(1, 3, 256, 256))
    torch.testing.assert_close(out.confidence, torch.tensor([0.5]))


def _expect_error(path, *needles):
    with pytest.raises(HybrIKCheckpointError) as error:
        load_hybrik(path)
    message = str(error.value)
    for needle in (str(path), "github.com/Jeff-sjtu/HybrIK", *needles):
        assert needle in message, message
    return message


def test_bad_checkpoints_raise_one_clear_error_naming_the_file(tmp_path, checkpoint):
    _expect_error(tmp_path / "absent.pth", "no such file")

    whole = tmp_path / "whole.pth"
    torch.save(checkpoint, whole)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _expect_error(truncated, "not a readable PyTorch checkpoint")

    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint")
    _expect_error(text, "not a readable PyTorch checkpoint")

    listed = tmp_path / "list.pth"
    torch.save([checkpoint["init_cam"]], listed)
    _expect_error(listed, "not a state dict")

    wrong = tmp_path / "wrong_shape.pth"
    torch.save({**checkpoint, "final_layer.weight": torch.zeros(24 * 64, 256, 1, 1)}, wrong)
    _expect_error(wrong, "final_layer.weight", "(1856, 256, 1, 1)", "(1536, 256, 1, 1)")

    missing = tmp_path / "missing_key.pth"
    torch.save({k: v for k, v in checkpoint.items() if k != "fc1.weight"}, missing)
    _expect_error(missing, "missing", "fc1.weight")

    extra = tmp_path / "unexpected_key.pth"
    torch.save({**checkpoint, "preact.fc.weight": torch.zeros(1000, 512)}, extra)
    _expect_error(extra, "unexpected", "preact.fc.weight")


def test_forward_shapes_and_ranges(net):
    images = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = net(images)
    shapes = {"uvd": (2, 29, 3), "joints": (2, 29, 3), "twist": (2, 23, 2), "betas": (2, 10), "cam_scale": (2,),
              "cam_trans": (2, 2), "root": (2, 3), "sigma": (2, 29), "confidence": (2,)}
    for name, shape in shapes.items():
        value = getattr(out, name)
        assert value.shape == shape and value.dtype == torch.float32 and torch.isfinite(value).all(), name
    assert out.uvd.abs().max() <= 0.5 and out.uvd.std() > 0.05            # joints spread over the crop
    torch.testing.assert_close(out.twist.norm(dim=-1), torch.ones(2, 23))
    assert ((out.sigma > 0) & (out.sigma < 1)).all()
    torch.testing.assert_close(out.confidence, (1 - out.sigma).mean(-1))
    torch.testing.assert_close(out.joints[:, 0], torch.zeros(2, 3))
    assert not torch.equal(out.joints[0], out.joints[1])                 # each image its own answer


def test_camera_model_follows_the_official_arithmetic(net):
    with torch.inference_mode():
        out = net(torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(2)))
    uvd, scale, trans = out.uvd.double(), out.cam_scale.double(), out.cam_trans.double()
    # Official: camDepth = f / (256 s + 1e-9); xy = uv 256 / f (d 2.2 + camDepth) - camTrans.
    cam_depth = 1000.0 / (256.0 * scale + 1e-9)
    z = uvd[..., 2] * 2.2 + cam_depth[:, None]
    xy = uvd[..., :2] * 256.0 / 1000.0 * z[..., None] - trans[:, None]
    xyz = torch.cat([xy, uvd[..., 2:] * 2.2], -1)
    torch.testing.assert_close(out.joints.double(), xyz - xyz[:, :1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.root[:, 2].double(), z[:, 0], atol=1e-5, rtol=1e-5)
    # The root lies on the ray through its own predicted crop pixel.
    torch.testing.assert_close(1000.0 * out.root[:, :2] / out.root[:, 2:] / 256.0, out.uvd[:, 0, :2],
                               atol=1e-5, rtol=0)


class FixedFeatures(nn.Module):
    """Stands in for the deconvolution head: the same (1, C, 64, 64) features for every image."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features.expand(x.shape[0], -1, -1, -1)


def test_integral_regression_finds_a_sharp_peak_at_its_voxel():
    x, y, z, joint = 40, 10, 20, 7
    logits = torch.zeros(1, 29, 64, 64, 64)
    logits[0, joint, z, y, x] = 50.0
    uvd = integral_coordinates(logits)
    torch.testing.assert_close(uvd[0, joint], torch.tensor([x / 64 - 0.5, y / 64 - 0.5, z / 64 - 0.5]),
                               atol=1e-3, rtol=0)
    torch.testing.assert_close(uvd[0, 0], torch.full((3,), 31.5 / 64 - 0.5), atol=1e-6, rtol=0)  # flat: the middle

    # Through the network: channel joint * 64 + z of the final layer is that joint's depth slice z.
    net = HybrIKNet().eval()
    features = torch.zeros(1, 256, 64, 64)
    features[0, 3, y, x] = 1.0
    net.deconv_layers = FixedFeatures(features)
    with torch.no_grad():
        net.final_layer.weight.zero_()
        net.final_layer.bias.zero_()
        net.final_layer.weight[joint * 64 + z, 3] = 50.0
        out = net(torch.zeros(2, 3, 256, 256))
    torch.testing.assert_close(out.uvd[:, joint], torch.tensor([[x / 64 - 0.5, y / 64 - 0.5, z / 64 - 0.5]] * 2),
                               atol=1e-3, rtol=0)


def test_virtual_camera_to_real_camera_known_answers():
    root = np.array([[0.5, -0.25, 4.0]])           # crop pixel 1000 * (0.5, -0.25) / 4 + 128 = (253, 65.5)
    # A 128 px box: the virtual focal length is 1000 * 128 / 256 = 500 image px, half the real one,
    # so the depth doubles; crop pixel (253, 65.5) is image pixel 320 + (253 - 127.5) / 2 = 382.75,
    # 240 + (65.5 - 127.5) / 2 = 209, and at depth 8: x = (382.75 - 319.5) 8 / 1000.
    small = virtual_to_camera(root, [PersonBox(320.0, 240.0, 128.0)], CAMERA)
    np.testing.assert_allclose(small, [[0.506, -0.244, 8.0]], atol=1e-9)
    # A 512 px box: virtual focal 2000 image px, so the depth halves; pixel (571, 116).
    large = virtual_to_camera(root, [PersonBox(320.0, 240.0, 512.0)], CAMERA)
    np.testing.assert_allclose(large, [[0.503, -0.247, 2.0]], atol=1e-9)
    # Depth uses the mean focal length; the pixel keeps its place in the image.
    skewed = PinholeCamera(800.0, 1200.0, 319.5, 239.5, 640, 480)
    moved = virtual_to_camera(root, [PersonBox(320.0, 240.0, 128.0)], skewed)
    assert moved[0, 2] == pytest.approx(8.0)
    np.testing.assert_allclose(skewed.project(moved), [[382.75, 209.0]], atol=1e-9)


def test_the_backend_needs_an_smpl_body(net):
    with pytest.raises(ValueError, match="SMPL model file"):
        HybrIKBackend(net, AnthropometricBody())


def test_backend_estimate_is_one_batched_pass_and_the_iks_skeleton(net, smpl_body):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 480, 640, 3), dtype=np.uint8)
    backend = HybrIKBackend(net, smpl_body)
    calls = []
    handle = net.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        box = PersonBox(300.0, 250.0, 320.0)
        poses = backend.estimate(images, CAMERA, [None, box], [None, None])
    finally:
        handle.remove()
    assert calls == [2] and backend.name == "hybrik"
    assert len(poses) == 2 and all(pose is not None for pose in poses)
    assert poses[0].box == PersonBox.full_frame(CAMERA) and poses[1].box == box

    crops = crop_images(torch.from_numpy(images), [poses[0].box, box])
    with torch.inference_mode():
        out = net(crops)
    roots = virtual_to_camera(out.root.numpy(), [poses[0].box, box], CAMERA)
    for i, pose in enumerate(poses):
        assert pose.positions.shape == (24, 3) and pose.positions.dtype == np.float32
        assert pose.rotations.shape == (24, 3, 3) and pose.rotations.dtype == np.float32
        assert np.isfinite(pose.positions).all()
        np.testing.assert_allclose(pose.rotations @ pose.rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3),
                                   (24, 3, 3)), atol=1e-5)
        np.testing.assert_allclose(np.linalg.det(pose.rotations), 1.0, atol=1e-5)
        np.testing.assert_allclose(pose.positions[0], roots[i], atol=1e-5)        # the root where the camera put it
        np.testing.assert_allclose(pose.betas, out.betas[i].numpy(), atol=1e-6)
        assert pose.score == pytest.approx(float(out.confidence[i]), abs=1e-6) and 0 < pose.score < 1
        # The IK's skeleton: every bone as long as in the rest skeleton of the predicted shape.
        rest = smpl_body.rest_joints(torch.from_numpy(pose.betas)[None].double())[0, :24].numpy()
        for parent, child in SMPL_24.bones:
            assert np.linalg.norm(pose.positions[child] - pose.positions[parent]) == pytest.approx(
                np.linalg.norm(rest[child] - rest[parent]), abs=1e-4)
    assert not np.allclose(poses[0].positions, poses[1].positions)


def test_backend_runs_the_network_under_bf16_autocast(net, smpl_body):
    images = np.random.default_rng(4).integers(0, 256, (1, 240, 320, 3), dtype=np.uint8)
    camera = PinholeCamera.from_field_of_view(320, 240, 1.0)
    out, roots, boxes = run_network(net, images, camera, [None], torch.bfloat16)
    assert out.uvd.dtype == out.joints.dtype == out.root.dtype == torch.float32     # the camera math in float32
    assert roots.shape == (1, 3) and np.isfinite(roots).all() and boxes == [PersonBox.full_frame(camera)]
    (pose,) = HybrIKBackend(net, smpl_body, autocast=torch.bfloat16).estimate(images, camera, [None], [None])
    assert pose is not None and np.isfinite(pose.positions).all() and pose.positions.dtype == np.float32
