"""Offline labelling: run the teacher over the images of a recorded bag and write a new bag with
the radar topics and the teacher's skeletons, ready for the trainer.

The camera images are not copied by default: the labelled bag is what the radar student learns
from, and a radar-only bag keeps the privacy the product promises (``keep_images`` copies them).
Every other topic is copied as recorded; an old teacher skeleton topic is replaced.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ros2_radar_pose import topics
from ros2_radar_pose.data.bags import CAMERA_INFO, IMAGE, BagError, BagReader, BagWriter
from ros2_radar_pose.teacher.backends import TeacherBackend
from ros2_radar_pose.teacher.camera import CameraMount, PinholeCamera, mount_from_transforms
from ros2_radar_pose.teacher.crop import PersonBox

RADAR_HINT_TOLERANCE_NS = 100_000_000     # a radar cloud this close to an image places its person


class LabelError(ValueError):
    """A bag that cannot be labelled; the message says what is missing."""


@dataclass
class LabelReport:
    images: int = 0               # images read
    labelled: int = 0             # skeletons written
    no_person: int = 0            # images in which the teacher found nobody
    radar_boxes: int = 0          # images whose person box came from the radar
    copied: dict[str, int] = field(default_factory=dict)   # messages copied per topic
    problems: list[str] = field(default_factory=list)      # damage met in the input bag
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.images / self.seconds if self.seconds else 0.0
        return (f"{self.images} images, {self.labelled} labelled, {self.no_person} without a person, "
                f"{self.radar_boxes} boxed by the radar; {rate:.1f} images/s")


def _radar_centres(reader: BagReader, topic: str, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (N,) int64 and the person's centre (N, 3) in ``frame`` from a cleaned cloud topic."""
    stamps, centres = [], []
    for cloud in reader.clouds(topic):
        if len(cloud.cloud) and cloud.frame_id in ("", frame):
            stamps.append(cloud.stamp_ns)
            centres.append(np.median(cloud.cloud[:, :3], axis=0))
    return np.asarray(stamps, dtype=np.int64), np.asarray(centres, dtype=np.float64).reshape(-1, 3)


def label_bag(source: str | Path, target: str | Path, backend: TeacherBackend, *,
              image_topic: str = "/camera/image_raw", info_topic: str = "/camera/camera_info",
              radar_frame: str = topics.RADAR_FRAME, radar_topic: str = topics.POINTS,
              mount: CameraMount | None = None, camera: PinholeCamera | None = None,
              label_topic: str = topics.TEACHER_SKELETON, batch_size: int = 16, keep_images: bool = False,
              overwrite: bool = False, progress: Callable[[int], None] | None = None) -> LabelReport:
    """Label the images of ``source`` into a new bag ``target``. The camera comes from
    ``info_topic`` unless given; the camera's mount from the bag's /tf_static (``radar_frame`` ->
    the images' frame) unless given. Damage in the source is reported, never fatal."""
    report = LabelReport()
    started = time.perf_counter()
    with BagReader(source) as reader:
        if image_topic not in reader.topics or reader.topics[image_topic].msgtype != IMAGE:
            raise LabelError(f"{source} has no sensor_msgs/Image topic {image_topic}; its topics: "
                             + ", ".join(f"{t} ({i.msgtype})" for t, i in sorted(reader.topics.items())))
        if camera is None:
            camera = _first_camera(reader, info_topic, source)
        statics = reader.static_transforms()
        stamps, centres = (_radar_centres(reader, radar_topic, radar_frame) if radar_topic in reader.topics
                           else (np.zeros(0, np.int64), np.zeros((0, 3))))
        skip = {label_topic} | (set() if keep_images else {image_topic})
        batch: list = []

        def flush() -> None:
            _label_batch(batch, backend, camera, mount, statics, radar_frame, stamps, centres, writer,
                         label_topic, report)
            if progress is not None:
                progress(len(batch))
            batch.clear()

        with BagWriter(target, overwrite=overwrite) as writer:
            for raw in reader.raw():
                if raw.topic == image_topic:
                    try:
                        batch.append(reader.decode(raw))
                    except ValueError as error:
                        report.problems.append(f"image at {raw.log_time_ns / 1e9:.3f} s skipped: {error}")
                        if progress is not None:
                            progress(1)
                    else:
                        report.images += 1
                        if len(batch) == batch_size:
                            flush()
                if raw.topic in skip:
                    continue
                try:
                    writer.write_raw(raw.topic, raw.msgtype, raw.log_time_ns, raw.data)
                except ValueError as error:          # a type rosbags does not know: say so once
                    problem = f"topic {raw.topic} not copied: {error}"
                    if problem not in report.problems:
                        report.problems.append(problem)
                    continue
                report.copied[raw.topic] = report.copied.get(raw.topic, 0) + 1
            if batch:
                flush()
        report.problems += [p for p in reader.problems if p not in report.problems]
    report.seconds = time.perf_counter() - started
    return report


def _first_camera(reader: BagReader, info_topic: str, source) -> PinholeCamera:
    if info_topic not in reader.topics or reader.topics[info_topic].msgtype != CAMERA_INFO:
        raise LabelError(f"{source} has no sensor_msgs/CameraInfo topic {info_topic}: name it, or give the "
                         "camera's intrinsics")
    try:
        for _, _, info in reader.messages([info_topic]):
            return info.camera
    except BagError:
        pass
    raise LabelError(f"{source}: no usable camera_info on {info_topic}")


def _label_batch(batch, backend: TeacherBackend, camera: PinholeCamera, mount: CameraMount | None, statics,
                 radar_frame: str, stamps: np.ndarray, centres: np.ndarray, writer: BagWriter,
                 label_topic: str, report: LabelReport) -> None:
    if not batch:
        return
    frame = batch[0].frame_id
    if mount is None:
        mount = mount_from_transforms(statics, radar_frame, frame)
        if mount is None:
            raise LabelError(f"the bag's /tf_static does not connect {radar_frame} and the images' frame "
                             f"{frame!r}: give the camera's mount (--camera-xyz, --camera-rpy)")
    boxes, hints = [], []
    for image in batch:
        centre = None
        if len(stamps):
            k = int(np.argmin(np.abs(stamps - image.stamp_ns)))
            if abs(int(stamps[k]) - image.stamp_ns) <= RADAR_HINT_TOLERANCE_NS:
                centre = centres[k]
        box = PersonBox.from_radar(centre, camera, mount) if centre is not None else None
        report.radar_boxes += box is not None
        boxes.append(box)
        hints.append(None if centre is None else mount.to_camera(centre))
    poses = backend.estimate(np.stack([image.image for image in batch]), camera, boxes, hints)
    for image, pose in zip(batch, poses):
        if pose is None:
            report.no_person += 1
            continue
        positions, rotations = mount.to_radar(pose.positions, pose.rotations)
        writer.write_skeleton(label_topic, image.stamp_ns, radar_frame, positions,
                              Rotation.from_matrix(rotations).as_quat())
        report.labelled += 1
