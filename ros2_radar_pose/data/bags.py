"""rosbag2 bags of the node graph's topics, without ROS: writing, reading that survives damage, decoding.

Writing goes through rosbags (MCAP or sqlite3, rosbag2 format version 9 for Jazzy and later,
8 for Humble: see BagWriter). Reading is done here, for MCAP and sqlite3, because rosbags stops
at the first problem while a bag from a robot is often cut short (a recording killed by a power
cut has no index) or damaged, and every good message in it is worth having.

What happens with damage: iterators yield every message they can read, going past a damaged
chunk where the file allows it, and then raise one BagError that names the bag, the topic(s),
what is wrong, the last good message before it and how many messages were read. A ``for`` loop
over an iterator therefore sees all the good data before the error arrives; catch BagError after
the loop to go on with what was read. The problems are also kept in ``BagReader.problems``.

A cloud is (N, 5) float32 x, y, z, velocity, intensity (radar/points.py); a skeleton is
positions (J, 3) and rotations (J, 4) xyzw, one PoseArray pose per joint (DESIGN.md). Stamps are
integer nanoseconds.
"""
from __future__ import annotations

import re
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Literal, NamedTuple

import numpy as np
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from ros2_radar_pose import topics as names
from ros2_radar_pose.data.mcap_stream import Damage, McapError, McapStream
from ros2_radar_pose.radar.cloud_layout import CloudDecoder, dtype_to_fields, is_dense
from ros2_radar_pose.radar.fields import TI_MMWAVE
from ros2_radar_pose.radar.points import FIELDS, as_cloud
from ros2_radar_pose.teacher.camera import PinholeCamera
from ros2_radar_pose.teacher.images import camera_from_info, image_to_rgb

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
POSE_ARRAY = "geometry_msgs/msg/PoseArray"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
STORAGES = ("mcap", "sqlite3")
NS = 1_000_000_000


def _offered(depth: int, durability: QosDurability) -> Qos:
    zero = QosTime(0, 0)  # unspecified: the middleware's default (infinite)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, zero, zero,
               QosLiveliness.AUTOMATIC, zero, False)


# What our nodes offer (ros/qos.py), so that a bag we write looks like a recording of them and
# `ros2 bag play` offers the same: sensor topics reliable, volatile, depth 5; TF depth 100;
# static TF transient-local, so that a player re-latches it.
SENSOR_QOS = _offered(5, QosDurability.VOLATILE)
TF_QOS = _offered(100, QosDurability.VOLATILE)
TF_STATIC_QOS = _offered(1, QosDurability.TRANSIENT_LOCAL)
OFFERED_QOS = {names.TF: TF_QOS, names.TF_STATIC: TF_STATIC_QOS}


@lru_cache(maxsize=1)
def _typestore():
    """The message definitions (identical from Humble to Kilted for every type used here)."""
    return get_typestore(Stores.ROS2_HUMBLE)


class BagError(ValueError):
    """A bag, or part of one, that cannot be read.

    ``bag``: the path given; ``topic``: the topic(s) being read, or None; ``problems``: what is
    wrong, first first; ``last_good``: (topic, log time ns) of the last good message before the
    first problem, or None when none was read; ``messages_read``: how many were read in all.
    """

    def __init__(self, bag, problem: str | Sequence[str], topic: str | None = None,
                 last_good: tuple[str, int] | None = None, messages_read: int | None = None):
        self.bag = Path(bag)
        self.problems = [problem] if isinstance(problem, str) else list(problem)
        self.topic = topic
        self.last_good = last_good
        self.messages_read = messages_read
        text = f"bag {bag}" + (f", topic {topic}" if topic else "") + f": {self.problems[0]}"
        if len(self.problems) > 1:
            text += f" (and {len(self.problems) - 1} more problem(s), the next: {self.problems[1]})"
        if messages_read is not None:
            if last_good is None:
                text += "; no good message came before it"
            else:
                text += f"; last good message before it: {last_good[0]} at log time {_seconds(last_good[1])} s"
            text += f"; {messages_read} message(s) read"
        super().__init__(text)

    @property
    def last_good_ns(self) -> int | None:
        return None if self.last_good is None else self.last_good[1]


@dataclass(frozen=True, eq=False)
class Transform:
    """A transform from ``parent`` to ``child``: the child's origin (3,) in metres and orientation
    (4,) x, y, z, w in the parent frame (geometry_msgs/TransformStamped)."""

    parent: str
    child: str
    translation: np.ndarray
    rotation: np.ndarray

    def __post_init__(self):
        for name, size in (("translation", 3), ("rotation", 4)):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (size,):
                raise ValueError(f"a Transform's {name} has shape ({size},), got {value.shape}")
            object.__setattr__(self, name, value)

    @classmethod
    def of_message(cls, msg) -> Transform:
        """From a geometry_msgs/TransformStamped, rclpy's or rosbags' (the same fields)."""
        t, q = msg.transform.translation, msg.transform.rotation
        return cls(msg.header.frame_id, msg.child_frame_id, (t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


class TopicInfo(NamedTuple):
    msgtype: str
    count: int                  # messages in the bag (what could be found, for a damaged bag)
    qos: tuple[Qos, ...]        # the QoS profiles its publishers offered


class RawMessage(NamedTuple):
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes                 # CDR, as recorded


class CloudMessage(NamedTuple):
    stamp_ns: int               # header stamp
    frame_id: str
    cloud: np.ndarray           # (N, 5) float32 x, y, z, velocity, intensity


class SkeletonMessage(NamedTuple):
    stamp_ns: int
    frame_id: str
    positions: np.ndarray       # (J, 3) float32, m, in frame_id
    rotations: np.ndarray       # (J, 4) float32, x, y, z, w: each joint's global orientation


# -- writing ---------------------------------------------------------------------------------------

class ImageMessage(NamedTuple):
    stamp_ns: int               # header stamp
    frame_id: str
    image: np.ndarray           # (H, W, 3) uint8 RGB, whatever the recorded encoding


class CameraInfoMessage(NamedTuple):
    stamp_ns: int
    frame_id: str
    camera: PinholeCamera


Decoded = CloudMessage | SkeletonMessage | list[Transform] | ImageMessage | CameraInfoMessage


class BagWriter:
    """Writes a rosbag2 bag (a directory) with rosbags; use it as a context manager.

    ``storage``: "mcap" (Jazzy's default) or "sqlite3" (Humble's). ``version``: the rosbag2
    metadata version; rosbags writes only 8 and 9. Version 9 (Jazzy and later) stores the
    offered QoS profiles as a YAML list with policy names, which Humble's rosbag2 cannot parse;
    version 8 stores them as a YAML string with enum values, the form Humble and Iron read (they
    ignore the keys added after their own version 5). For a robot on Humble write version 8,
    sqlite3 (MCAP needs the rosbag2_storage_mcap plugin there). This follows the formats' change
    logs; it was not tried against a Humble installation here. ``overwrite`` replaces an existing
    bag (only a directory that holds nothing but bag files).

    Note: rosbags writes MCAP chunks without checksums, so damage inside a message of a bag
    written here cannot be detected when reading; rosbag2's recordings carry them.

    Every ``write_*`` takes the header stamp in integer nanoseconds and records it as the
    message's log time too. Topics are registered on first use, offering our nodes' QoS.
    Leaving the ``with`` block closes the bag, also on an exception, so what was written stays
    readable.
    """

    def __init__(self, path: str | Path, storage: Literal["mcap", "sqlite3"] = "mcap",
                 version: Literal[8, 9] = 9, overwrite: bool = False):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        if version not in (8, 9):
            raise ValueError(f"version must be 8 (Humble and later) or 9 (Jazzy and later), got {version!r}")
        self.path = Path(path)
        if self.path.exists() or self.path.is_symlink():
            if not overwrite:
                raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace the bag")
            _remove_bag(self.path)
        self.storage = storage
        self._typestore = get_typestore(Stores.ROS2_HUMBLE)  # our own: write_raw may register types
        self._connections: dict[str, tuple[object, str]] = {}
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer: Writer | None = Writer(self.path, version=version, storage_plugin=plugin)
        self._writer.open()
        types = self._typestore.types
        self._header, self._time = types["std_msgs/msg/Header"], types["builtin_interfaces/msg/Time"]

    def write_cloud(self, topic: str, stamp_ns: int, frame_id: str, cloud: np.ndarray,
                    layout: np.dtype = TI_MMWAVE) -> None:
        """A (N, 5) float32 cloud as a PointCloud2 (height 1) in ``layout``: ti_mmwave_rospkg's
        by default (radar/fields.py), or any structured dtype with the five float32 fields."""
        cloud = as_cloud(cloud)
        if layout.names is None or any(name not in layout.names for name in FIELDS):
            raise ValueError(f"a cloud layout needs the fields {', '.join(FIELDS)}, got {layout}")
        points = np.zeros(len(cloud), dtype=layout)  # zeros: padding bytes are written as 0
        for column, name in enumerate(FIELDS):
            points[name] = cloud[:, column]
        fields, is_bigendian = dtype_to_fields(layout)
        types = self._typestore.types
        field_type = types["sensor_msgs/msg/PointField"]
        msg = types[POINTCLOUD2](
            header=self._stamped(stamp_ns, frame_id), height=1, width=len(points),
            fields=[field_type(name=name, offset=offset, datatype=datatype, count=count)
                    for name, offset, datatype, count in fields],
            is_bigendian=is_bigendian, point_step=layout.itemsize, row_step=layout.itemsize * len(points),
            data=np.frombuffer(points.tobytes(), dtype=np.uint8), is_dense=is_dense(points))
        self._write(topic, POINTCLOUD2, stamp_ns, self._typestore.serialize_cdr(msg, POINTCLOUD2))

    def write_skeleton(self, topic: str, stamp_ns: int, frame_id: str, positions: np.ndarray,
                       rotations: np.ndarray | None = None) -> None:
        """A skeleton as a PoseArray, one pose per joint: positions (J, 3) in m, global rotations
        (J, 4) x, y, z, w (None: identity orientations)."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions have shape (J, 3), got {positions.shape}")
        if rotations is None:
            rotations = np.tile([0.0, 0.0, 0.0, 1.0], (len(positions), 1))
        rotations = np.asarray(rotations, dtype=np.float64)
        if rotations.shape != (len(positions), 4):
            raise ValueError(f"rotations have shape ({len(positions)}, 4) (x, y, z, w), got {rotations.shape}")
        types = self._typestore.types
        pose, point, quaternion = (types[f"geometry_msgs/msg/{name}"] for name in ("Pose", "Point", "Quaternion"))
        msg = types[POSE_ARRAY](header=self._stamped(stamp_ns, frame_id), poses=[
            pose(position=point(x=p[0], y=p[1], z=p[2]), orientation=quaternion(x=q[0], y=q[1], z=q[2], w=q[3]))
            for p, q in zip(positions.tolist(), rotations.tolist())])
        self._write(topic, POSE_ARRAY, stamp_ns, self._typestore.serialize_cdr(msg, POSE_ARRAY))

    def write_image(self, topic: str, stamp_ns: int, frame_id: str, image: np.ndarray) -> None:
        """An (H, W, 3) uint8 RGB image as an rgb8 Image."""
        image = np.ascontiguousarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"images are (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        height, width, _ = image.shape
        msg = self._typestore.types[IMAGE](
            header=self._stamped(stamp_ns, frame_id), height=height, width=width, encoding="rgb8",
            is_bigendian=0, step=width * 3, data=image.reshape(-1))
        self._write(topic, IMAGE, stamp_ns, self._typestore.serialize_cdr(msg, IMAGE))

    def write_camera_info(self, topic: str, stamp_ns: int, frame_id: str, camera: PinholeCamera) -> None:
        """A CameraInfo of a distortion-free pinhole camera."""
        types = self._typestore.types
        k = camera.matrix
        p = np.hstack([k, np.zeros((3, 1))])
        msg = types[CAMERA_INFO](
            header=self._stamped(stamp_ns, frame_id), height=camera.height, width=camera.width,
            distortion_model="plumb_bob", d=np.zeros(5), k=k.reshape(-1), r=np.eye(3).reshape(-1),
            p=p.reshape(-1), binning_x=0, binning_y=0,
            roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                          do_rectify=False))
        self._write(topic, CAMERA_INFO, stamp_ns, self._typestore.serialize_cdr(msg, CAMERA_INFO))

    def write_static_transforms(self, stamp_ns: int, transforms: Iterable[Transform]) -> None:
        """One TFMessage on /tf_static, offered transient-local (re-latched when played)."""
        types = self._typestore.types
        stamped, transform, vector, quaternion = (types[f"geometry_msgs/msg/{name}"] for name in (
            "TransformStamped", "Transform", "Vector3", "Quaternion"))
        msgs = []
        for tf in transforms:
            t, q = tf.translation.tolist(), tf.rotation.tolist()
            msgs.append(stamped(header=self._stamped(stamp_ns, tf.parent), child_frame_id=tf.child,
                                transform=transform(translation=vector(x=t[0], y=t[1], z=t[2]),
                                                    rotation=quaternion(x=q[0], y=q[1], z=q[2], w=q[3]))))
        msg = types[TF_MESSAGE](transforms=msgs)
        self._write(names.TF_STATIC, TF_MESSAGE, stamp_ns, self._typestore.serialize_cdr(msg, TF_MESSAGE))

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes, msgdef: str | None = None) -> None:
        """CDR bytes as they are. A message type rosbags does not know needs its definition
        ``msgdef`` (the .msg text), which the bag then carries."""
        if msgdef is not None and msgtype not in self._typestore.types:
            try:
                self._typestore.register(get_types_from_msg(msgdef, msgtype))
            except Exception as error:  # rosbags' parser raises its own error types
                raise ValueError(f"the definition given for {msgtype} does not parse: {error}") from None
        self._write(topic, msgtype, stamp_ns, bytes(data))

    def close(self) -> None:
        """Finish the bag (index, metadata.yaml); writing after this raises."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except BaseException:
            writer.abort()
            raise

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stamped(self, stamp_ns: int, frame_id: str):
        stamp_ns = _check_stamp(stamp_ns)
        return self._header(stamp=self._time(sec=stamp_ns // NS, nanosec=stamp_ns % NS), frame_id=frame_id)

    def _write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes | memoryview) -> None:
        if self._writer is None:
            raise ValueError(f"bag {self.path} is closed")
        connection, registered = self._connections.get(topic, (None, msgtype))
        if registered != msgtype:
            raise ValueError(f"topic {topic} carries {registered} in bag {self.path}, not {msgtype}")
        if connection is None:
            if msgtype not in self._typestore.types:
                raise ValueError(f"message type {msgtype} is unknown to rosbags' typestore; pass its "
                                 "definition as write_raw(..., msgdef=...)")
            connection = self._writer.add_connection(topic, msgtype, typestore=self._typestore,
                                                     offered_qos_profiles=[OFFERED_QOS.get(topic, SENSOR_QOS)])
            self._connections[topic] = (connection, msgtype)
        self._writer.write(connection, _check_stamp(stamp_ns), data)


def _check_stamp(stamp_ns) -> int:
    if isinstance(stamp_ns, (bool, float)) or not isinstance(stamp_ns, (int, np.integer)):
        raise TypeError(f"stamps are integer nanoseconds, got {stamp_ns!r}")
    stamp_ns = int(stamp_ns)
    if not 0 <= stamp_ns < 2**31 * NS:
        raise ValueError(f"stamp {stamp_ns} ns is outside builtin_interfaces/Time (0 to 2^31 s)")
    return stamp_ns


def _remove_bag(path: Path) -> None:
    """Delete a bag directory, refusing anything that holds more than bag files."""
    if path.is_dir() and not path.is_symlink():
        others = [p.name for p in path.iterdir()
                  if not (p.is_file() and (p.name == "metadata.yaml" or p.suffix in (".mcap", ".db3")
                                           or p.name.endswith((".db3-wal", ".db3-shm", ".db3-journal"))))]
        if others:
            raise FileExistsError(f"{path} holds more than a bag ({', '.join(sorted(others)[:5])}); "
                                  "not overwriting it")
        shutil.rmtree(path)
    else:
        raise FileExistsError(f"{path} exists and is not a bag directory; not overwriting it")


# -- reading ---------------------------------------------------------------------------------------

class _Lost(NamedTuple):
    """A problem met while reading: what is wrong and what it cost."""

    reason: str


class BagReader:
    """Reads a bag: a rosbag2 directory (with or without metadata.yaml), an .mcap or a .db3 file.

    ``topics`` (topic -> TopicInfo), ``start_ns``/``end_ns`` (first and last log time; None for
    an empty bag) and ``problems`` (found while opening, then while reading) are known after
    construction. Iterators (``raw``, ``clouds``, ``skeletons``, ``messages``) stream, and
    follow the module's rule for damage: all good messages, then one BagError.
    Raises BagError when nothing can be read at all.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.problems: list[str] = []
        files, self._message_compression = self._storage_files()
        self._storages: list[_McapStorage | _SqliteStorage] = []
        try:
            for file in files:
                try:
                    storage = _McapStorage(file) if file.suffix == ".mcap" else _SqliteStorage(file)
                except (McapError, sqlite3.DatabaseError, OSError) as error:
                    if len(files) == 1:
                        raise BagError(self.path, f"{file.name} cannot be read: {error}") from None
                    self.problems.append(f"{file.name} cannot be read and is skipped: {error}")
                    continue
                self.problems += [f"{file.name}: {problem}" for problem in storage.problems]
                self._storages.append(storage)
        except BaseException:
            self.close()
            raise
        self.topics: dict[str, TopicInfo] = {}
        for storage in self._storages:
            for topic, info in storage.topics.items():
                known = self.topics.get(topic)
                if known is None:
                    self.topics[topic] = info
                elif known.msgtype != info.msgtype:
                    self.problems.append(f"topic {topic} carries {info.msgtype} in one file and "
                                         f"{known.msgtype} in another; only {known.msgtype} is read")
                else:
                    self.topics[topic] = known._replace(count=known.count + info.count, qos=known.qos + info.qos)
        starts = [s.start_ns for s in self._storages if s.start_ns is not None]
        ends = [s.end_ns for s in self._storages if s.end_ns is not None]
        self.start_ns: int | None = min(starts) if starts else None
        self.end_ns: int | None = max(ends) if ends else None

    def close(self) -> None:
        for storage in getattr(self, "_storages", []):
            storage.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BagReader({str(self.path)!r}, {len(self.topics)} topics)"

    # -- iterators ----------------------------------------------------------------------------

    def raw(self, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
        """(topic, msgtype, log time ns, CDR bytes) of ``topics`` (all when None), in log-time
        order (file order for a bag without index)."""
        selected = self._select(topics)
        label = None if topics is None else ", ".join(sorted(selected))

        def generate():
            report = _Report(self, label)
            for item in self._stream(selected):
                if isinstance(item, _Lost):
                    report.lost(item.reason)
                else:
                    report.good(item)
                    yield item
            report.finish()
        return generate()

    def clouds(self, topic: str = names.RADAR_POINTS, overrides: dict[str, str] | None = None
               ) -> Iterator[CloudMessage]:
        """The clouds of a PointCloud2 topic in any layout with x, y, z and optionally velocity and
        intensity under the names radar/fields.py knows (``overrides``: input field per column)."""
        self._select([topic], POINTCLOUD2)
        return (message for _, _, message in self.messages([topic], {topic: CloudDecoder(overrides)}))

    def skeletons(self, topic: str = names.TEACHER_SKELETON) -> Iterator[SkeletonMessage]:
        """The skeletons of a PoseArray topic."""
        self._select([topic], POSE_ARRAY)
        return (message for _, _, message in self.messages([topic]))

    def static_transforms(self) -> list[Transform]:
        """The transforms on /tf_static, the latest for each child frame (none when the bag has no
        /tf_static)."""
        if names.TF_STATIC not in self.topics:
            return []
        self._select([names.TF_STATIC], TF_MESSAGE)
        latest: dict[str, Transform] = {}
        for _, _, transforms in self.messages([names.TF_STATIC]):
            latest.update((tf.child, tf) for tf in transforms)
        return list(latest.values())

    def messages(self, topics: Iterable[str], cloud_decoders: dict[str, CloudDecoder] | None = None
                 ) -> Iterator[tuple[str, int, Decoded]]:
        """(topic, log time ns, decoded message) of several topics in one pass: PointCloud2 ->
        CloudMessage, PoseArray -> SkeletonMessage, TFMessage -> list[Transform], Image ->
        ImageMessage, CameraInfo -> CameraInfoMessage."""
        selected = self._select(topics)
        decoders = {}
        for topic in selected:
            msgtype = self.topics[topic].msgtype
            if msgtype not in _DECODERS:
                raise BagError(self.path, f"messages of type {msgtype} cannot be decoded here (this reads "
                               f"{', '.join(_DECODERS)}); raw() reads any type", topic)
            decoders[topic] = _DECODERS[msgtype]
        clouds = {topic: (cloud_decoders or {}).get(topic) or CloudDecoder() for topic in selected}
        label = ", ".join(sorted(selected))

        def generate():
            report = _Report(self, label)
            for item in self._stream(selected):
                if isinstance(item, _Lost):
                    report.lost(item.reason)
                    continue
                try:
                    decoded = decoders[item.topic](item.data, clouds[item.topic])
                except Exception as error:  # untrusted bytes: rosbags and the decoders raise many kinds
                    report.lost(f"the {item.topic} message at log time {_seconds(item.log_time_ns)} s "
                                f"cannot be decoded ({error}); it is skipped")
                    continue
                report.good(item)
                yield item.topic, item.log_time_ns, decoded
            report.finish()
        return generate()

    def decode(self, message: RawMessage, cloud_decoder: CloudDecoder | None = None) -> Decoded:
        """One message from ``raw()``, decoded as ``messages()`` does; ValueError when its type is not
        one of those or its bytes do not decode."""
        decoder = _DECODERS.get(message.msgtype)
        if decoder is None:
            raise ValueError(f"messages of type {message.msgtype} cannot be decoded here")
        try:
            return decoder(message.data, cloud_decoder or CloudDecoder())
        except ValueError:
            raise
        except Exception as error:  # untrusted bytes: rosbags raises many kinds
            raise ValueError(f"the {message.topic} message does not decode: {error}") from None

    # -- internals ----------------------------------------------------------------------------

    def _select(self, topics: Iterable[str] | None, msgtype: str | None = None) -> set[str]:
        if topics is None:
            return set(self.topics)
        selected = {topics} if isinstance(topics, str) else set(topics)
        missing = sorted(selected - set(self.topics))
        if missing:
            present = ", ".join(f"{t} ({i.msgtype}, {i.count} messages)" for t, i in sorted(self.topics.items()))
            raise BagError(self.path, f"the bag has no topic {', '.join(missing)}; it has {present or 'no topics'}",
                           ", ".join(missing))
        for topic in selected:
            if msgtype is not None and self.topics[topic].msgtype != msgtype:
                raise BagError(self.path, f"the topic carries {self.topics[topic].msgtype}, not {msgtype}", topic)
        return selected

    def _stream(self, selected: set[str]) -> Iterator[RawMessage | _Lost]:
        for storage in self._storages:
            for item in storage.messages(selected):
                if isinstance(item, _Lost):
                    problem = f"{storage.path.name}: {item.reason}"
                    if problem not in self.problems:
                        self.problems.append(problem)
                    yield _Lost(problem)
                elif self._message_compression:
                    try:
                        yield item._replace(data=_zstd_decompress(item.data))
                    except Exception as error:  # the codec's own error types
                        yield _Lost(f"the {item.topic} message at log time {_seconds(item.log_time_ns)} s "
                                    f"does not decompress ({error}); it is skipped")
                else:
                    yield item

    def _storage_files(self) -> tuple[list[Path], bool]:
        """The storage files of the bag, in order, and whether messages are zstd-compressed."""
        path = self.path
        if path.is_file() and path.name == "metadata.yaml":
            path = path.parent
        if path.is_file():
            if path.suffix in (".mcap", ".db3"):
                return [path], False
            raise BagError(self.path, "not a bag: give a bag directory, an .mcap or a .db3 file")
        if not path.is_dir():
            raise BagError(self.path, "no such bag (neither a directory nor a file)")
        compressed = False
        metadata = path / "metadata.yaml"
        if metadata.is_file():
            try:
                info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
                files = [path / PurePath(name).name for name in info["relative_file_paths"]]
                mode = str(info.get("compression_mode") or "").lower()
            except Exception as error:  # any malformed YAML or layout: fall back to the files themselves
                self.problems.append(f"metadata.yaml cannot be used ({type(error).__name__}: {error}); "
                                     "the storage files in the directory are read instead")
            else:
                if mode == "file":
                    raise BagError(self.path, "the bag's files are compressed as a whole; decompress them "
                                   "first (ros2 bag decompress, or zstd -d and edit metadata.yaml)")
                compressed = mode == "message"
                missing = [file.name for file in files if not file.is_file()]
                if missing:
                    self.problems.append(f"files named in metadata.yaml are missing: {', '.join(missing)}")
                files = [file for file in files if file.is_file() and file.suffix in (".mcap", ".db3")]
                if files:
                    return files, compressed
        files = sorted((p for p in path.iterdir() if p.suffix in (".mcap", ".db3") and p.is_file()),
                       key=lambda p: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", p.name)])
        if not files:
            raise BagError(self.path, "the directory holds no .mcap or .db3 file")
        return files, compressed


class _Report:
    """Keeps count of an iteration: good messages, the problems met, the last good message."""

    def __init__(self, reader: BagReader, topic: str | None):
        self.reader, self.topic = reader, topic
        self.read = 0
        self.last: tuple[str, int] | None = None
        self.problems: list[str] = []
        self.last_before_problem: tuple[str, int] | None = None

    def good(self, message: RawMessage) -> None:
        self.read += 1
        self.last = (message.topic, message.log_time_ns)

    def lost(self, reason: str) -> None:
        if not self.problems:
            self.last_before_problem = self.last
        self.problems.append(reason)

    def finish(self) -> None:
        if self.problems:
            raise BagError(self.reader.path, self.problems, self.topic, self.last_before_problem, self.read)


class _McapStorage:
    """One .mcap file."""

    def __init__(self, path: Path):
        self.path = path
        self._mcap = McapStream(path)
        self.problems = list(self._mcap.open_problems)
        self._topic_of: dict[int, tuple[str, str]] = {}
        self.topics: dict[str, TopicInfo] = {}
        for channel in self._mcap.channels.values():
            if channel.encoding != "cdr":
                self.problems.append(f"topic {channel.topic} is encoded as {channel.encoding!r}, not CDR; "
                                     "it is left out")
                continue
            qos = tuple(_parse_qos(channel.metadata.get("offered_qos_profiles", ""), channel.topic, self.problems))
            count = self._mcap.counts.get(channel.id, 0)
            known = self.topics.get(channel.topic)
            if known is not None and known.msgtype != channel.msgtype:
                self.problems.append(f"topic {channel.topic} carries {channel.msgtype} and {known.msgtype}; "
                                     f"only {known.msgtype} is read")
                continue
            self._topic_of[channel.id] = (channel.topic, channel.msgtype)
            self.topics[channel.topic] = (TopicInfo(channel.msgtype, count, qos) if known is None else
                                          known._replace(count=known.count + count, qos=known.qos + qos))
        self.start_ns, self.end_ns = self._mcap.start_ns, self._mcap.end_ns

    def messages(self, selected: set[str]) -> Iterator[RawMessage | _Lost]:
        channel_ids = {cid for cid, (topic, _) in self._topic_of.items() if topic in selected}
        if not channel_ids:
            return
        try:
            for item in self._mcap.messages(channel_ids):
                if isinstance(item, Damage):
                    yield _Lost(f"at byte {item.offset}: {item.reason}")
                else:
                    topic, msgtype = self._topic_of[item.channel_id]
                    yield RawMessage(topic, msgtype, item.log_time, item.data)
        except OSError as error:
            yield _Lost(f"reading failed ({error}); the rest of the file is lost")

    def close(self) -> None:
        self._mcap.close()


class _SqliteStorage:
    """One .db3 file (rosbag2's sqlite3 storage), opened read-only."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []
        self._copy = None  # a page-aligned copy of a file cut short (see _open_damaged)
        self._db = _connect(path)
        try:
            rows = self._topic_rows()
        except sqlite3.DatabaseError as error:
            self.problems.append(f"the database is damaged ({error}); reading what is left of it")
            self._db.close()
            try:
                self._db = self._open_damaged(path)
                rows = self._topic_rows()
            except sqlite3.DatabaseError as error:
                self.close()
                raise sqlite3.DatabaseError(f"not a readable rosbag2 sqlite3 database ({error})") from None
        self._topic_of = {row["id"]: (row["name"], row["type"]) for row in rows
                          if row.get("serialization_format", "cdr") == "cdr"}
        counts = self._counts()
        self.topics = {}
        for row in rows:
            if row["id"] not in self._topic_of:
                self.problems.append(f"topic {row['name']} is not CDR-encoded; it is left out")
                continue
            qos = tuple(_parse_qos(row.get("offered_qos_profiles") or "", row["name"], self.problems))
            count, _, _ = counts.get(row["id"], (0, None, None))
            self.topics[row["name"]] = TopicInfo(row["type"], count, qos)
        starts = [start for _, start, _ in counts.values() if start is not None]
        ends = [end for _, _, end in counts.values() if end is not None]
        self.start_ns = min(starts) if starts else None
        self.end_ns = max(ends) if ends else None

    def _open_damaged(self, path: Path) -> sqlite3.Connection:
        """A connection that reads what is left of a damaged file.

        SQLite refuses a file shorter than its header says unless told to trust what it finds
        (writable_schema; harmless, the connection is read-only). It reads a page cut short as
        zeros, silently: such a file is read through a copy that ends at the last whole page.
        """
        with path.open("rb") as file:
            header = file.read(100)
        page_size = struct.unpack_from(">H", header, 16)[0] if len(header) == 100 else 0
        page_size = 65536 if page_size == 1 else page_size
        size = path.stat().st_size
        if page_size and size % page_size:
            self._copy = tempfile.NamedTemporaryFile(suffix=".db3")
            with path.open("rb") as source:
                remaining = size - size % page_size
                while remaining:
                    block = source.read(min(remaining, 1 << 24))
                    self._copy.write(block)
                    remaining -= len(block)
            self._copy.flush()
            path = Path(self._copy.name)
        db = _connect(path)
        db.execute("PRAGMA writable_schema=ON")
        return db

    def _topic_rows(self) -> list[dict]:
        cursor = self._db.execute("SELECT * FROM topics")
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def _counts(self) -> dict[int, tuple[int, int | None, int | None]]:
        """topic id -> (messages, first and last log time); counted row by row when damage stops SQL."""
        try:
            return {topic_id: (count, start, end) for topic_id, count, start, end in self._db.execute(
                "SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) FROM messages GROUP BY topic_id")}
        except sqlite3.DatabaseError as error:
            self.problems.append(f"the database is damaged ({error}); the messages were counted up to the damage")
        counts: dict[int, list] = {}
        try:
            for topic_id, stamp in self._db.execute("SELECT topic_id, timestamp FROM messages ORDER BY id"):
                if not isinstance(stamp, int):
                    continue  # a damaged row
                entry = counts.setdefault(topic_id, [0, stamp, stamp])
                entry[0] += 1
                entry[1], entry[2] = min(entry[1], stamp), max(entry[2], stamp)
        except sqlite3.DatabaseError:
            pass
        return {topic_id: tuple(entry) for topic_id, entry in counts.items()}

    def messages(self, selected: set[str]) -> Iterator[RawMessage | _Lost]:
        ids = [topic_id for topic_id, (topic, _) in self._topic_of.items() if topic in selected]
        if not ids:
            return
        where = f"WHERE topic_id IN ({', '.join('?' * len(ids))})"
        yielded = 0
        # Log-time order through the timestamp index; when that is what is damaged, insertion order.
        for order in ("timestamp", "id"):
            try:
                for topic_id, stamp, data in self._db.execute(
                        f"SELECT topic_id, timestamp, data FROM messages {where} ORDER BY {order}", ids):
                    if not isinstance(stamp, int) or not isinstance(data, bytes):
                        yield _Lost(f"a damaged row of topic {self._topic_of[topic_id][0]} is skipped")
                        continue
                    topic, msgtype = self._topic_of[topic_id]
                    yielded += 1
                    yield RawMessage(topic, msgtype, stamp, data)
                return
            except sqlite3.DatabaseError as error:
                if yielded or order == "id":
                    yield _Lost(f"the database is damaged ({error}); the messages after the last one read are lost")
                    return

    def close(self) -> None:
        self._db.close()
        if self._copy is not None:
            self._copy.close()


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)


def _parse_qos(text, topic: str, problems: list[str]) -> list[Qos]:
    try:
        return parse_qos(text)
    except Exception as error:  # rosbags raises its own error, or KeyError on missing fields
        problems.append(f"the QoS profiles recorded for {topic} do not parse ({error}); defaults are assumed")
        return []


def _zstd_decompress(data: bytes) -> bytes:
    try:
        from compression import zstd  # Python 3.14
    except ImportError:
        from backports import zstd  # what rosbags uses before 3.14
    return zstd.decompress(data)


def _seconds(nanoseconds: int) -> str:
    return f"{nanoseconds // NS}.{nanoseconds % NS:09d}"


# -- decoding ----------------------------------------------------------------------------------------

def _stamp_ns(stamp) -> int:
    return stamp.sec * NS + stamp.nanosec


def _decode_cloud(data: bytes, decoder: CloudDecoder) -> CloudMessage:
    msg = _typestore().deserialize_cdr(data, POINTCLOUD2)
    return CloudMessage(_stamp_ns(msg.header.stamp), msg.header.frame_id, decoder(msg))


_CDR_LITTLE_ENDIAN = b"\x00\x01"


def _decode_skeleton(data: bytes, _=None) -> SkeletonMessage:
    """A PoseArray read straight from its CDR bytes (ten times faster than building Pose objects)."""
    if data[:2] != _CDR_LITTLE_ENDIAN:
        msg = _typestore().deserialize_cdr(data, POSE_ARRAY)
        poses = np.array([(p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                           p.orientation.z, p.orientation.w) for p in msg.poses], dtype=np.float64).reshape(-1, 7)
        return SkeletonMessage(_stamp_ns(msg.header.stamp), msg.header.frame_id,
                               poses[:, :3].astype(np.float32), poses[:, 3:].astype(np.float32))
    body = memoryview(data)[4:]  # alignment counts from after the encapsulation header
    sec, nanosec, size = struct.unpack_from("<iII", body)
    if size == 0 or 12 + size > len(body):
        raise ValueError("the frame_id string overruns the message")
    frame_id = bytes(body[12:12 + size - 1]).decode()
    cursor = (12 + size + 3) & ~3
    count = struct.unpack_from("<I", body, cursor)[0]
    cursor = (cursor + 4 + 7) & ~7
    if cursor + count * 56 > len(body):
        raise ValueError(f"{count} poses do not fit in {len(data)} bytes")
    poses = np.frombuffer(body, "<f8", count * 7, cursor).reshape(count, 7)
    return SkeletonMessage(sec * NS + nanosec, frame_id, poses[:, :3].astype(np.float32),
                           poses[:, 3:].astype(np.float32))


def _decode_transforms(data: bytes, _=None) -> list[Transform]:
    return [Transform.of_message(tf) for tf in _typestore().deserialize_cdr(data, TF_MESSAGE).transforms]


def _decode_image(data: bytes, _=None) -> ImageMessage:
    msg = _typestore().deserialize_cdr(data, IMAGE)
    return ImageMessage(_stamp_ns(msg.header.stamp), msg.header.frame_id, image_to_rgb(msg))


def _decode_camera_info(data: bytes, _=None) -> CameraInfoMessage:
    msg = _typestore().deserialize_cdr(data, CAMERA_INFO)
    return CameraInfoMessage(_stamp_ns(msg.header.stamp), msg.header.frame_id, camera_from_info(msg))


_DECODERS = {POINTCLOUD2: _decode_cloud, POSE_ARRAY: _decode_skeleton, TF_MESSAGE: _decode_transforms,
             IMAGE: _decode_image, CAMERA_INFO: _decode_camera_info}

__all__ = ["BagError", "BagReader", "BagWriter", "CloudMessage", "RawMessage", "SkeletonMessage", "TopicInfo",
           "Transform", "OFFERED_QOS", "SENSOR_QOS", "TF_QOS", "TF_STATIC_QOS"]
