"""The person box and the network's input crop.

A box comes from a detector, from the radar's person cluster seen through the camera, or is the
whole image; it is made square around its centre, enlarged by 1.25 (HybrIK's margin) and cut out
of the image by an affine warp to the network's input size. ``PersonBox.to_image`` takes the
network's crop pixels back to image pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ros2_radar_pose.teacher.camera import CameraMount, PinholeCamera

MARGIN = 1.25
INPUT_SIZE = 256
# Per-channel mean and std of the official HybrIK input, applied to R, G, B in this order.
MEAN = (0.406, 0.457, 0.480)
STD = (0.225, 0.224, 0.229)
# Half extents (m) of the box a standing person fills around the radar cluster's centre,
# in the radar frame (x forward, y left, z up).
PERSON_HALF_EXTENT = np.array([0.4, 0.4, 1.0])


@dataclass(frozen=True)
class PersonBox:
    """A square box in image pixels: centre (``u``, ``v``) and side ``size``."""

    u: float
    v: float
    size: float

    def __post_init__(self):
        if not (np.isfinite([self.u, self.v, self.size]).all() and self.size > 0):
            raise ValueError(f"a person box needs a finite centre and a positive size, got {self}")

    @classmethod
    def around(cls, left: float, top: float, right: float, bottom: float, margin: float = MARGIN) -> PersonBox:
        """The square box around a rectangle (pixels), its longer side times ``margin``."""
        if not (right > left and bottom > top):
            raise ValueError(f"an empty rectangle: left {left} top {top} right {right} bottom {bottom}")
        return cls((left + right) / 2.0, (top + bottom) / 2.0, max(right - left, bottom - top) * margin)

    @classmethod
    def full_frame(cls, camera: PinholeCamera) -> PersonBox:
        """The whole image, square-padded (the box of last resort)."""
        return cls((camera.width - 1) / 2.0, (camera.height - 1) / 2.0, float(max(camera.width, camera.height)))

    @classmethod
    def from_radar(cls, centre: np.ndarray, camera: PinholeCamera, mount: CameraMount,
                   margin: float = MARGIN) -> PersonBox | None:
        """The box of a person-sized block around the radar cluster's ``centre`` (3,) (radar frame),
        projected into the image; None when the block is not in front of the camera or misses it."""
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        uv = camera.project(mount.to_camera(np.asarray(centre, dtype=np.float64) + corners * PERSON_HALF_EXTENT))
        if not np.isfinite(uv).all():
            return None
        left, top = uv.min(0)
        right, bottom = uv.max(0)
        if right < 0 or bottom < 0 or left > camera.width - 1 or top > camera.height - 1:
            return None
        return cls.around(left, top, right, bottom, margin)

    def to_image(self, crop_pixels: np.ndarray | torch.Tensor, input_size: int = INPUT_SIZE):
        """Crop pixels (..., 2) of an ``input_size`` crop -> image pixels (..., 2)."""
        scale = self.size / input_size
        centre = (input_size - 1) / 2.0
        out = crop_pixels * scale
        out[..., 0] += self.u - centre * scale
        out[..., 1] += self.v - centre * scale
        return out


def crop_images(images: torch.Tensor, boxes: list[PersonBox], input_size: int = INPUT_SIZE) -> torch.Tensor:
    """Cut ``boxes`` out of ``images`` (B, H, W, 3) uint8 RGB, bilinear, black outside the image,
    and normalise: (B, 3, input_size, input_size) float32 on the images' device."""
    if images.ndim != 4 or images.shape[-1] != 3 or len(boxes) != len(images):
        raise ValueError(f"crop_images takes (B, H, W, 3) images and B boxes, got {tuple(images.shape)} "
                         f"and {len(boxes)} boxes")
    b, h, w, _ = images.shape
    device = images.device
    box = torch.tensor([[bx.u, bx.v, bx.size] for bx in boxes], dtype=torch.float32, device=device)
    # Crop pixel i sits at image pixel u + (i - (n - 1) / 2) * size / n; grid_sample wants the
    # pixel in [-1, 1] with align_corners=False: (2 u + 1) / W - 1.
    steps = torch.arange(input_size, dtype=torch.float32, device=device) - (input_size - 1) / 2.0
    offsets = steps[None] * (box[:, 2:3] / input_size)                                  # (B, n)
    gx = (2.0 * (box[:, 0:1] + offsets) + 1.0) / w - 1.0
    gy = (2.0 * (box[:, 1:2] + offsets) + 1.0) / h - 1.0
    grid = torch.stack([gx[:, None, :].expand(-1, input_size, -1), gy[:, :, None].expand(-1, -1, input_size)], -1)
    pixels = images.permute(0, 3, 1, 2).float() / 255.0
    crops = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    return (crops - mean) / std
