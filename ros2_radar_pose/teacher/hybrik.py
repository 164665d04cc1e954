"""HybrIK (Li et al., CVPR 2021) with its ResNet-34 backbone: image crop in, 3D skeleton out.

``HybrIKNet`` is the official ``Simple3DPoseBaseSMPLCam`` (ResNet-34, 2.2 m depth bins, focal
length 1000 px, the config ``256x192_adam_lr1e-3-res34_smpl_3d_cam_2x_mix_w_pw3d.yaml``), laid out
so the official checkpoint loads with ``load_state_dict(strict=True)``:

- ``preact``: ResNet-34 without its classifier, 512 x 8 x 8 features of a 256 x 256 crop;
- ``deconv_layers`` and ``final_layer``: three 2x transposed convolutions to 64 x 64, then one
  64-bin depth heatmap per HYBRIK_29 joint; integral regression (a softmax over each joint's
  64^3 volume, then the expected voxel) gives ``uvd`` in [-0.5, 0.5];
- ``fc1``, ``fc2`` and the ``dec*`` heads on the pooled features: SMPL shape ``betas``, the 23
  bones' twist (cos, sin), a weak-perspective camera (scale, translation) and a per-joint
  uncertainty ``sigma``.

The camera turns ``uvd`` into metric joints as the official forward does: the crop is seen by a
virtual camera of focal length 1000 px over the 256 px crop, whose optical axis passes through
the crop's centre; the root sits at depth 1000 / (256 scale). ``HybrIKBackend`` carries that
virtual camera to the real one through the person box and solves the SMPL rotations with the
project's analytic IK (body/hybrik_ik.py) on the project's SMPL body model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ros2_radar_pose.body.hybrik_ik import BONE_CHILD, inverse_kinematics
from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.models import BodyModel, SMPLBody
from ros2_radar_pose.body.smpl_file import WHERE_FROM as SMPL_WHERE_FROM
from ros2_radar_pose.teacher.backends import TeacherPose
from ros2_radar_pose.teacher.camera import PinholeCamera
from ros2_radar_pose.teacher.crop import INPUT_SIZE, PersonBox, crop_images

NUM_JOINTS = 29
NUM_TWISTS = 23
DEPTH_BINS = 64                 # the heatmap is DEPTH_BINS x 64 x 64 per joint
FOCAL_LENGTH = 1000.0           # px, the virtual camera's, over the INPUT_SIZE crop
DEPTH_FACTOR = 2.2              # m spanned by uvd's d in [-0.5, 0.5] (BBOX_3D_SHAPE 2200 mm)
RESNET34_BLOCKS = (3, 4, 6, 3)
OPTIONAL_KEYS = ("decsigma.weight", "decsigma.bias")
WHERE_FROM = ("official HybrIK checkpoints come from the README of https://github.com/Jeff-sjtu/HybrIK "
              "(the ResNet-34 model with camera, 'hybrik_res34' / pretrained_w_cam.pth, config "
              "256x192_adam_lr1e-3-res34_smpl_3d_cam_2x_mix_w_pw3d.yaml)")


class HybrIKCheckpointError(ValueError):
    """A HybrIK checkpoint that is missing, unreadable or not the ResNet-34 HybrIK; the message
    names the file, what is wrong and where official checkpoints come from."""


@dataclass
class HybrIKOutput:
    """One forward, batch B. ``uvd`` (B, 29, 3): crop x, y in [-0.5, 0.5] of the crop's width
    (crop pixel (u + 0.5) * 256) and depth relative to the root in units of 2.2 m; ``joints``
    (B, 29, 3): HYBRIK_29 joints relative to the pelvis, metres, camera axes (x right, y down,
    z forward); ``twist`` (B, 23, 2): unit (cos, sin) for joints 1..23; ``betas`` (B, 10);
    ``cam_scale`` (B,) and ``cam_trans`` (B, 2): the weak-perspective camera; ``root`` (B, 3):
    the pelvis in the virtual crop camera, metres, on the ray through its predicted crop pixel;
    ``sigma`` (B, 29) in (0, 1): per-joint uncertainty; ``confidence`` (B,) = mean(1 - sigma),
    the official per-joint score averaged."""

    uvd: torch.Tensor
    joints: torch.Tensor
    twist: torch.Tensor
    betas: torch.Tensor
    cam_scale: torch.Tensor
    cam_trans: torch.Tensor
    root: torch.Tensor
    sigma: torch.Tensor
    confidence: torch.Tensor


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (a strided 1x1 convolution where the shape changes)."""

    def __init__(self, dim_in: int, dim: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(dim_in, dim, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)
        self.downsample = None
        if stride != 1 or dim_in != dim:
            self.downsample = nn.Sequential(nn.Conv2d(dim_in, dim, 1, stride, bias=False), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)), inplace=True)


class ResNet34(nn.Module):
    """ResNet-34 (He et al., 2016) up to its last stage, torchvision's parameter names, no
    pooling or classifier: (B, 3, H, W) -> (B, 512, H / 32, W / 32)."""

    def __init__(self, blocks: tuple[int, ...] = RESNET34_BLOCKS):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        dim_in = 64
        for stage, (dim, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
            stride = 1 if stage == 1 else 2
            layers = [BasicBlock(dim_in if i == 0 else dim, dim, stride if i == 0 else 1) for i in range(count)]
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
            dim_in = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x)), inplace=True))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _children_map() -> list[int]:
    """HybrIK's child of each HYBRIK_29 joint: the bone that aims it, -1 at the leaves."""
    children = [-1] * NUM_JOINTS
    for joint, child in BONE_CHILD.items():
        children[joint] = child
    children[0], children[9] = 3, 12              # pelvis and spine3 aim along the spine
    return children


class SMPLBuffers(nn.Module):
    """The SMPL arrays the official checkpoint carries under ``smpl.*`` (its SMPL_layer's buffers:
    faces, template, shape and pose blend shapes, joint and Human3.6M regressors, skinning
    weights, the HYBRIK_29 tree). They exist so checkpoints load strictly; nothing here reads
    them: the IK and the rest skeleton come from the project's body model (body/models.py),
    built from the SMPL file the user brings."""

    def __init__(self, vertices: int = 6890, faces: int = 13776, betas: int = 10):
        super().__init__()
        self.register_buffer("faces_tensor", torch.zeros(faces, 3, dtype=torch.long))
        self.register_buffer("v_template", torch.zeros(vertices, 3))
        self.register_buffer("shapedirs", torch.zeros(vertices, 3, betas))
        self.register_buffer("posedirs", torch.zeros(23 * 9, vertices * 3))
        self.register_buffer("J_regressor", torch.zeros(24, vertices))
        self.register_buffer("J_regressor_h36m", torch.zeros(17, vertices))
        self.register_buffer("parents", torch.tensor(HYBRIK_29.parents, dtype=torch.long))
        self.register_buffer("children_map", torch.tensor(_children_map(), dtype=torch.long))
        self.register_buffer("lbs_weights", torch.zeros(vertices, 24))


def integral_coordinates(logits: torch.Tensor) -> torch.Tensor:
    """Soft-argmax of heatmap ``logits`` (B, J, D, H, W): a softmax over each joint's whole volume,
    then the expected x, y, z voxel index over the size, minus 0.5 -> (B, J, 3) in [-0.5, 0.5]."""
    b, j, d, h, w = logits.shape
    p = logits.float().reshape(b, j, -1).softmax(-1).reshape(b, j, d, h, w)
    marginals = (p.sum((2, 3)), p.sum((2, 4)), p.sum((3, 4)))                    # over x, y, z
    return torch.stack([(m * torch.arange(m.shape[-1], dtype=m.dtype, device=m.device)).sum(-1) / m.shape[-1] - 0.5
                        for m in marginals], dim=-1)


class HybrIKNet(nn.Module):
    """HybrIK's ResNet-34 ``Simple3DPoseBaseSMPLCam``: (B, 3, 256, 256) normalised crops
    (teacher/crop.py ``crop_images``) -> ``HybrIKOutput``. Inference only: the official model's
    flip test and its own SMPL pass are left out."""

    def __init__(self, num_joints: int = NUM_JOINTS, depth_bins: int = DEPTH_BINS, deconv_dim: int = 256,
                 feature_dim: int = 512, hidden: int = 1024):
        super().__init__()
        self.num_joints, self.depth_bins = num_joints, depth_bins
        self.preact = ResNet34()
        deconv, dim_in = [], feature_dim
        for _ in range(3):
            deconv += [nn.ConvTranspose2d(dim_in, deconv_dim, 4, 2, 1, bias=False), nn.BatchNorm2d(deconv_dim),
                       nn.ReLU(inplace=True)]
            dim_in = deconv_dim
        self.deconv_layers = nn.Sequential(*deconv)
        self.final_layer = nn.Conv2d(deconv_dim, num_joints * depth_bins, 1)
        self.smpl = SMPLBuffers()
        # Official init_shape is the Human3.6M mean shape; a checkpoint carries it.
        self.register_buffer("init_shape", torch.zeros(10))
        self.register_buffer("init_cam", torch.tensor([0.9, 0.0, 0.0]))
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(feature_dim, hidden)
        self.drop1 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(0.5)
        self.decshape = nn.Linear(hidden, 10)
        self.decphi = nn.Linear(hidden, NUM_TWISTS * 2)
        self.deccam = nn.Linear(hidden, 3)
        self.decsigma = nn.Linear(hidden, num_joints)
        self.has_sigma = True           # False: loaded from a checkpoint without decsigma
        # The official start before training: near-uniform heatmaps (uvd near the crop's centre).
        for module in (*self.deconv_layers, self.final_layer):
            if isinstance(module, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(module.weight, std=0.001)
            if isinstance(module, nn.Conv2d):
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> HybrIKOutput:
        b = images.shape[0]
        features = self.preact(images)                                            # (B, 512, 8, 8)
        logits = self.final_layer(self.deconv_layers(features))                   # (B, J * D, 64, 64)
        uvd = integral_coordinates(logits.reshape(b, self.num_joints, self.depth_bins, *logits.shape[-2:]))

        x = self.drop2(self.fc2(self.drop1(self.fc1(self.avg_pool(features).flatten(1)))))
        betas = self.decshape(x).float() + self.init_shape
        twist = F.normalize(self.decphi(x).float().reshape(b, NUM_TWISTS, 2), dim=-1)
        cam = self.deccam(x).float() + self.init_cam
        sigma = self.decsigma(x).float().sigmoid()

        scale, trans = cam[:, 0], cam[:, 1:]
        # Weak perspective: a body drawn at scale s stands at depth f / (256 s); d is root-relative.
        cam_depth = FOCAL_LENGTH / (INPUT_SIZE * scale + 1e-9)                    # (B,)
        depth = uvd[..., 2] * DEPTH_FACTOR + cam_depth[:, None]                   # (B, J) absolute, virtual
        xy = uvd[..., :2] * (INPUT_SIZE / FOCAL_LENGTH) * depth[..., None] - trans[:, None]
        xyz = torch.cat([xy, uvd[..., 2:] * DEPTH_FACTOR], dim=-1)
        # The official camera_root keeps -cam_trans in x, y (newer code) or adds it back (older);
        # back on the ray through the root's own crop pixel, it agrees with what HybrIKBackend
        # places at that pixel.
        root = torch.cat([xy[:, 0] + trans, depth[:, :1]], dim=-1)
        return HybrIKOutput(uvd=uvd, joints=xyz - xyz[:, :1], twist=twist, betas=betas, cam_scale=scale,
                            cam_trans=trans, root=root, sigma=sigma, confidence=(1.0 - sigma).mean(-1))


def _fail(path, problem: str) -> HybrIKCheckpointError:
    return HybrIKCheckpointError(f"HybrIK checkpoint {path}: {problem}; {WHERE_FROM}")


def _some(names, count: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:count]) + (f" and {len(names) - count} more" if len(names) > count else "")


def load_hybrik(path: str | Path, device: str | torch.device = "cpu") -> HybrIKNet:
    """The ResNet-34 HybrIK from an official checkpoint, in eval mode on ``device``.

    Takes a plain state dict, one under ``'model'`` (or ``'state_dict'``), with or without
    DataParallel's ``module.`` prefix; loads with ``weights_only=True``. Loading is strict, but
    for the uncertainty head (``decsigma``), which the first released checkpoints predate: without
    it sigma is 0.5 for every joint, so confidence is a constant 0.5 (``net.has_sigma`` False).
    Anything else raises ``HybrIKCheckpointError``.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "not a file")
    net = HybrIKNet().to(device)
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:      # torch raises several kinds for a truncated or foreign file
        reason = str(error).strip().splitlines()[0].split(". ")[0][:200] if str(error).strip() else type(error).__name__
        raise _fail(path, f"not a readable PyTorch checkpoint (truncated, or another format, or it holds "
                          f"more than tensors: {reason})") from error
    if isinstance(data, dict) and not any(torch.is_tensor(v) for v in data.values()):
        data = next((data[k] for k in ("model", "state_dict") if isinstance(data.get(k), dict)), data)
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) and torch.is_tensor(v)
                                                         for k, v in data.items()):
        raise _fail(path, f"holds a {type(data).__name__}, not a state dict of named tensors")
    if all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}

    expected = net.state_dict()
    missing, unexpected = set(expected) - set(data), set(data) - set(expected)
    net.has_sigma = not set(OPTIONAL_KEYS) <= missing
    if not net.has_sigma:
        missing -= set(OPTIONAL_KEYS)
    if missing or unexpected:
        found = [f"{len(missing)} missing keys ({_some(missing)})"] if missing else []
        found += [f"{len(unexpected)} unexpected keys ({_some(unexpected)})"] if unexpected else []
        raise _fail(path, "not the ResNet-34 HybrIK with camera: " + "; ".join(found))
    wrong = [f"{k}: expected {tuple(expected[k].shape)}, found {tuple(data[k].shape)}"
             for k in expected if k in data and data[k].shape != expected[k].shape]
    if wrong:
        raise _fail(path, f"{len(wrong)} tensor(s) of the wrong shape ({'; '.join(wrong[:5])})")
    if not net.has_sigma:
        data = {**data, **{k: torch.zeros_like(expected[k]) for k in OPTIONAL_KEYS}}
    net.load_state_dict(data, strict=True)
    return net.eval()


def virtual_to_camera(roots: np.ndarray, boxes: list[PersonBox], camera: PinholeCamera,
                      input_size: int = INPUT_SIZE, focal: float = FOCAL_LENGTH) -> np.ndarray:
    """Points (B, 3) in the virtual crop cameras (focal ``focal`` px over the ``input_size`` crop,
    optical axis through crop pixel input_size / 2) -> the real camera's frame (B, 3), float64.

    The crop of box size s is ``input_size`` px wide, so the virtual focal length in image pixels
    is focal * s / input_size; a point keeps its image pixel and its depth scales by the ratio of
    focal lengths, real (the mean of fx, fy) over virtual.
    """
    roots = np.asarray(roots, dtype=np.float64).reshape(-1, 3)
    sizes = np.array([box.size for box in boxes], dtype=np.float64)
    crop_pixels = focal * roots[:, :2] / roots[:, 2:] + input_size / 2.0          # (u + 0.5) * input_size
    pixels = np.stack([box.to_image(p, input_size) for box, p in zip(boxes, crop_pixels)])
    depth = roots[:, 2] * 0.5 * (camera.fx + camera.fy) / (focal * sizes / input_size)
    return camera.backproject(pixels, depth)


@torch.inference_mode()
def run_network(net: HybrIKNet, images: np.ndarray, camera: PinholeCamera, boxes: list[PersonBox | None],
                autocast: torch.dtype | None = None) -> tuple[HybrIKOutput, np.ndarray, list[PersonBox]]:
    """Everything of the teacher but the IK: crop ``images`` (B, H, W, 3) uint8 RGB around their
    boxes (the whole frame where None) on the network's device, one forward (under autocast to
    ``autocast`` when given), and each root in the real camera. Returns the output, the roots
    (B, 3) float64 and the boxes used."""
    if len(boxes) != len(images):
        raise ValueError(f"one box (or None) per image: {len(images)} images, {len(boxes)} boxes")
    boxes = [PersonBox.full_frame(camera) if box is None else box for box in boxes]
    device = net.final_layer.weight.device
    crops = crop_images(torch.from_numpy(np.ascontiguousarray(images)).to(device), boxes)
    with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        out = net(crops)
    return out, virtual_to_camera(out.root.double().cpu().numpy(), boxes, camera), boxes


class HybrIKBackend:
    """The teacher backend on HybrIK: ``estimate`` crops every image around its box (the whole
    frame when None), runs the network once on the batch, places each root in the real camera
    (``virtual_to_camera``), and solves the SMPL rotations with one batched IK on the body
    model's rest skeleton for the predicted betas; positions are the IK's joints, so every bone
    has its rest length. ``radar_centres`` are not used: HybrIK measures depth from the person's
    apparent size.

    Approximations: the virtual camera's axes are taken parallel to the real camera's, so the
    body's orientation is off by the angle between the camera's optical axis and the ray through
    the box's centre (a few degrees for a person near the image centre); the depth uses one focal
    length (the mean of fx, fy); lens distortion is ignored (images are taken as rectified); the
    IK fits the predicted joints with the body model's bones, so joints move where the network's
    bone lengths disagree with the predicted shape.

    ``net``: a HybrIKNet (``load_hybrik``), moved to ``device`` and put in eval mode; ``body``: an
    ``SMPLBody`` (HybrIK's betas are SMPL's); the IK runs on the body's device in its dtype;
    ``autocast``: a dtype to run the network in under autocast (torch.bfloat16 on CUDA), None for
    float32.
    """

    name = "hybrik"

    def __init__(self, net: HybrIKNet, body: BodyModel, device: str | torch.device = "cpu",
                 autocast: torch.dtype | None = None):
        if not isinstance(body, SMPLBody):
            raise ValueError(f"the HybrIK teacher needs the SMPL body model (its shape coefficients are SMPL "
                             f"betas), got {type(body).__name__}: give the SMPL model file. {SMPL_WHERE_FROM}")
        self.net = net.to(device).eval()
        self.body = body
        self.autocast = autocast

    @torch.inference_mode()
    def estimate(self, images: np.ndarray, camera: PinholeCamera, boxes: list[PersonBox | None],
                 radar_centres: list[np.ndarray | None]) -> list[TeacherPose | None]:
        """One ``TeacherPose`` per image (SMPL-24, camera optical frame); None where the result is
        not finite."""
        out, roots, boxes = run_network(self.net, images, camera, boxes, self.autocast)
        rest = self.body.rest_joints(out.betas.to(self.body.smpl.v_template))
        like = dict(dtype=rest.dtype, device=rest.device)
        targets = torch.as_tensor(roots, **like)[:, None] + out.joints.to(**like)
        ik = inverse_kinematics(targets, out.twist.to(**like), rest)
        positions = ik.joints[:, :24].float().cpu().numpy()
        rotations = ik.global_rotations.float().cpu().numpy()
        scores, betas = out.confidence.float().cpu().numpy(), out.betas.float().cpu().numpy()
        return [TeacherPose(positions[i], rotations[i], float(scores[i]), boxes[i], betas[i])
                if np.isfinite(positions[i]).all() and np.isfinite(rotations[i]).all() else None
                for i in range(len(boxes))]
