"""sensor_msgs/Image and CameraInfo -> NumPy, for any Image-like object (an rclpy message or one
rosbags deserialised from a bag), so the teacher node and the offline labeller decode alike.

Colour encodings: rgb8, bgr8, rgba8, bgra8, mono8 (grey, repeated to three channels) and
yuv422_yuy2 / yuyv (usb_cam's default). Others (Bayer, 16-bit depth, compressed) are refused with
an ImageError naming the encoding.
"""
from __future__ import annotations

import numpy as np

from ros2_radar_pose.teacher.camera import PinholeCamera

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "8uc3": 3,
            "yuv422_yuy2": 2, "yuyv": 2}


class ImageError(ValueError):
    """An Image or CameraInfo message the teacher cannot use; the message says why."""


def image_to_rgb(msg) -> np.ndarray:
    """An Image message -> (H, W, 3) uint8 RGB (a copy)."""
    encoding = msg.encoding.lower()
    channels = CHANNELS.get(encoding)
    if channels is None:
        raise ImageError(f"image encoding {msg.encoding!r} is not supported "
                         f"(supported: {', '.join(sorted(CHANNELS))})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f"empty image ({width}x{height})")
    if step < width * channels:
        raise ImageError(f"image step {step} is shorter than a row of {width} {encoding} pixels")
    data = np.frombuffer(msg.data, np.uint8)    # bytes, array.array (rclpy), ndarray (rosbags): no copy
    if data.size < step * (height - 1) + width * channels:
        raise ImageError(f"image data holds {data.size} bytes, a {width}x{height} {encoding} image "
                         f"with step {step} needs {step * height}")
    rows = np.lib.stride_tricks.as_strided(data, (height, width * channels), (step, 1))
    pixels = rows.reshape(height, width, channels)
    if encoding in ("rgb8", "8uc3"):
        return pixels.copy()
    if encoding == "bgr8":
        return pixels[..., ::-1].copy()
    if encoding == "rgba8":
        return pixels[..., :3].copy()
    if encoding == "bgra8":
        return pixels[..., 2::-1].copy()
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if width % 2:
        raise ImageError(f"a {encoding} image needs an even width, got {width}")
    return _yuyv_to_rgb(pixels.reshape(height, width // 2, 4))


def _yuyv_to_rgb(pairs: np.ndarray) -> np.ndarray:
    """(H, W/2, 4) Y0 U Y1 V -> (H, W, 3) RGB (ITU-R BT.601, studio swing)."""
    pairs = pairs.astype(np.float32)
    y = np.stack([pairs[..., 0], pairs[..., 2]], -1).reshape(pairs.shape[0], -1) - 16.0
    u = np.repeat(pairs[..., 1] - 128.0, 2, axis=1)
    v = np.repeat(pairs[..., 3] - 128.0, 2, axis=1)
    rgb = np.stack([1.164 * y + 1.596 * v, 1.164 * y - 0.392 * u - 0.813 * v, 1.164 * y + 2.017 * u], -1)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def camera_from_info(msg) -> PinholeCamera:
    """A CameraInfo message -> PinholeCamera from its K. Lens distortion is not undone: the
    teacher's error from it is small next to its own on a typical camera; rectify upstream
    (image_proc) for a wide-angle lens."""
    k = np.asarray(msg.k, dtype=np.float64)
    if k.size != 9 or k[0] <= 0 or k[4] <= 0:
        raise ImageError("camera_info has no calibration (K's focal lengths are not positive): "
                         "calibrate the camera (camera_calibration) or set the teacher's camera intrinsics")
    try:
        return PinholeCamera.from_matrix(k, int(msg.width), int(msg.height))
    except ValueError as error:
        raise ImageError(f"camera_info: {error}") from None
