"""Bags: round trips through every storage, an independent MCAP reader, time synchronisation,
and every kind of damage a bag from a robot can come with."""
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from ros2_radar_pose import topics
from ros2_radar_pose.data.bags import (
    NS,
    SENSOR_QOS,
    TF_STATIC_QOS,
    BagError,
    BagReader,
    BagWriter,
    CloudMessage,
    SkeletonMessage,
    Transform,
)
from ros2_radar_pose.data.sync import SyncedRecord, synchronized
from ros2_radar_pose.radar import cloud_layout
from ros2_radar_pose.radar.fields import TI_MMWAVE
from ros2_radar_pose.radar.points import POINT_DTYPE

STAMP0 = 1_700_000_000 * NS
PERIOD = 50_000_000  # 20 Hz
FRAME = topics.RADAR_FRAME
TRANSFORMS = [Transform("world", "radar_link", [0.5, -1.0, 1.25], [0.0, 0.0, 0.38268343, 0.92387953]),
              Transform("radar_link", "camera_link", [0.1, 0.0, 0.05], [0.5, -0.5, 0.5, -0.5])]
STORAGES = [("mcap", 9), ("mcap", 8), ("sqlite3", 8), ("sqlite3", 9)]
VENDOR_TYPE, VENDOR_DEF = "vendor_msgs/msg/Status", "uint8 level\nstring text\n"


class Session:
    """Random clouds and skeletons at 20 Hz: what a recording of the radar and the teacher holds."""

    def __init__(self, frames: int, seed: int = 0, joints: int = 24, max_points: int = 64):
        rng = np.random.default_rng(seed)
        self.stamps = STAMP0 + np.arange(frames, dtype=np.int64) * PERIOD
        self.clouds = [rng.normal(0, 2, (rng.integers(0, max_points + 1), 5)).astype(np.float32)
                       for _ in range(frames)]
        self.positions = rng.normal(0, 1, (frames, joints, 3)).astype(np.float32)
        rotations = rng.normal(size=(frames, joints, 4))
        self.rotations = (rotations / np.linalg.norm(rotations, axis=-1, keepdims=True)).astype(np.float32)

    def write(self, path: Path, storage="mcap", version=9) -> Path:
        with BagWriter(path, storage, version) as bag:
            bag.write_static_transforms(int(self.stamps[0]), TRANSFORMS)
            for stamp, cloud, positions, rotations in zip(self.stamps.tolist(), self.clouds, self.positions,
                                                          self.rotations):
                bag.write_cloud(topics.RADAR_POINTS, stamp, FRAME, cloud)
                bag.write_skeleton(topics.TEACHER_SKELETON, stamp + 1000, FRAME, positions, rotations)
        return path


def bits(array: np.ndarray) -> np.ndarray:
    """The float32 bit patterns, so NaN payloads and -0.0 compare exactly."""
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


def mcap_file(bag: Path) -> Path:
    return next(bag.glob("*.mcap"))


# -- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("storage, version", STORAGES)
def test_round_trip_is_bit_identical(tmp_path, storage, version):
    session = Session(30)
    bag = session.write(tmp_path / "bag", storage, version)
    with BagReader(bag) as reader:
        assert reader.problems == []
        assert {t: (i.msgtype, i.count) for t, i in reader.topics.items()} == {
            topics.RADAR_POINTS: ("sensor_msgs/msg/PointCloud2", 30),
            topics.TEACHER_SKELETON: ("geometry_msgs/msg/PoseArray", 30),
            topics.TF_STATIC: ("tf2_msgs/msg/TFMessage", 1)}
        assert reader.topics[topics.TF_STATIC].qos == (TF_STATIC_QOS,)
        assert reader.topics[topics.RADAR_POINTS].qos == (SENSOR_QOS,)
        assert (reader.start_ns, reader.end_ns) == (STAMP0, int(session.stamps[-1]) + 1000)
        clouds = list(reader.clouds(topics.RADAR_POINTS))
        assert [c.stamp_ns for c in clouds] == session.stamps.tolist()
        assert {c.frame_id for c in clouds} == {FRAME}
        for got, want in zip(clouds, session.clouds):
            assert got.cloud.dtype == np.float32 and got.cloud.shape == want.shape
            np.testing.assert_array_equal(bits(got.cloud), bits(want))
        skeletons = list(reader.skeletons(topics.TEACHER_SKELETON))
        assert [s.stamp_ns for s in skeletons] == (session.stamps + 1000).tolist()
        np.testing.assert_array_equal(np.stack([s.positions for s in skeletons]), session.positions)
        np.testing.assert_array_equal(np.stack([s.rotations for s in skeletons]), session.rotations)
        assert skeletons[0].positions.dtype == skeletons[0].rotations.dtype == np.float32
        statics = reader.static_transforms()
        assert [(t.parent, t.child) for t in statics] == [(t.parent, t.child) for t in TRANSFORMS]
        for got, want in zip(statics, TRANSFORMS):
            np.testing.assert_array_equal(got.translation, want.translation)
            np.testing.assert_array_equal(got.rotation, want.rotation)
        raw = list(reader.raw())
        assert [m.log_time_ns for m in raw] == sorted(m.log_time_ns for m in raw)
        assert len(raw) == 61


def test_every_storage_holds_the_same_bytes_and_raw_bytes_pass_unchanged(tmp_path):
    session = Session(10, seed=1)
    payloads = [bytes(np.random.default_rng(i).integers(0, 256, 1 + 37 * i, dtype=np.uint8)) for i in range(5)]
    contents = []
    for storage, version in STORAGES:
        path = session.write(tmp_path / f"{storage}{version}", storage, version)
        with BagReader(path) as reader:
            contents.append([(m.topic, m.msgtype, m.log_time_ns, m.data) for m in reader.raw()])
        raw_bag = tmp_path / f"raw_{storage}{version}"
        with BagWriter(raw_bag, storage, version) as bag:
            for index, payload in enumerate(payloads):
                bag.write_raw("/opaque", "std_msgs/msg/String", STAMP0 + index, payload)
        with BagReader(raw_bag) as reader:
            assert [m.data for m in reader.raw(["/opaque"])] == payloads
    assert all(content == contents[0] for content in contents[1:])


@settings(max_examples=40, deadline=None)
@given(clouds=st.lists(hnp.arrays(np.float32, st.tuples(st.integers(0, 100), st.just(5)),
                                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
                       min_size=1, max_size=4))
def test_any_cloud_survives_a_bag_bit_for_bit(tmp_path_factory, clouds):
    path = tmp_path_factory.mktemp("bag") / "bag"
    with BagWriter(path) as bag:
        for index, cloud in enumerate(clouds):
            bag.write_cloud(topics.RADAR_POINTS, STAMP0 + index, FRAME, cloud)
    with BagReader(path) as reader:
        got = list(reader.clouds())
    assert len(got) == len(clouds)
    for message, cloud in zip(got, clouds):
        np.testing.assert_array_equal(bits(message.cloud), bits(cloud))


def test_other_layouts_and_field_names_decode_into_the_shared_cloud(tmp_path):
    rng = np.random.default_rng(4)
    cloud = rng.normal(size=(7, 5)).astype(np.float32)
    snr = np.dtype({"names": ["x", "y", "z", "velocity", "intensity"], "formats": ["<f4"] * 5,
                    "offsets": [0, 4, 8, 12, 16], "itemsize": 20})
    with BagWriter(tmp_path / "bag") as bag:
        bag.write_cloud("/processed", STAMP0, FRAME, cloud, layout=snr)
        # A driver calling them doppler and snr, big-endian float64, no padding rules followed.
        driver = np.dtype({"names": ["snr", "x", "doppler", "y", "z"], "formats": [">f8"] * 5,
                           "offsets": [0, 8, 16, 24, 40], "itemsize": 56})
        points = np.zeros(len(cloud), driver)
        for name, column in (("x", 0), ("y", 1), ("z", 2), ("doppler", 3), ("snr", 4)):
            points[name] = cloud[:, column]
        bag.write_raw("/driver", "sensor_msgs/msg/PointCloud2", STAMP0, pointcloud2_cdr(points, STAMP0))
        xyz_only = np.zeros(3, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
        xyz_only["x"] = [1, 2, 3]
        bag.write_raw("/bare", "sensor_msgs/msg/PointCloud2", STAMP0, pointcloud2_cdr(xyz_only, STAMP0))
    with BagReader(tmp_path / "bag") as reader:
        np.testing.assert_array_equal(next(reader.clouds("/processed")).cloud, cloud)
        np.testing.assert_array_equal(next(reader.clouds("/driver")).cloud, cloud)
        bare = next(reader.clouds("/bare")).cloud
        np.testing.assert_array_equal(bare, [[1, 0, 0, 0, 0], [2, 0, 0, 0, 0], [3, 0, 0, 0, 0]])


def pointcloud2_cdr(points: np.ndarray, stamp_ns: int, frame_id: str = FRAME) -> bytes:
    """A PointCloud2 serialised by rosbags from a structured array (any layout)."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    fields, bigendian = cloud_layout.dtype_to_fields(points.dtype)
    msg = types["sensor_msgs/msg/PointCloud2"](
        header=types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
            sec=stamp_ns // NS, nanosec=stamp_ns % NS), frame_id=frame_id),
        height=1, width=len(points), fields=[types["sensor_msgs/msg/PointField"](
            name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields],
        is_bigendian=bigendian, point_step=points.dtype.itemsize, row_step=points.dtype.itemsize * len(points),
        data=np.frombuffer(points.tobytes(), np.uint8), is_dense=True)
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2"))


def test_point_field_datatypes_are_sensor_msgs_constants():
    from sensor_msgs.msg import PointField

    names = ("INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32", "FLOAT32", "FLOAT64")
    assert [getattr(cloud_layout, n) for n in names] == [getattr(PointField, n) for n in names]


def test_offered_qos_is_what_our_nodes_offer():
    from ros2_radar_pose.ros import qos

    for ours, theirs in ((SENSOR_QOS, qos.SENSOR_PUBLICATION), (TF_STATIC_QOS, qos.TF_STATIC)):
        assert (ours.depth, ours.reliability.name, ours.durability.name, ours.history.name) == (
            theirs.depth, theirs.reliability.name, theirs.durability.name, theirs.history.name)


# -- an independent reader ----------------------------------------------------------------------------

def ti_mmwave_bytes(cloud: np.ndarray) -> bytes:
    """ti_mmwave_rospkg's point layout, packed with struct: x y z pad intensity velocity pad."""
    return b"".join(struct.pack("<3f4x2f8x", x, y, z, intensity, velocity)
                    for x, y, z, velocity, intensity in cloud.tolist())


@pytest.mark.parametrize("version", [9, 8])
def test_mcap_reader_and_ros2_decoder_read_what_we_wrote(tmp_path, version):
    session = Session(12, seed=2)
    session.clouds[3][1, 0] = np.nan  # makes that cloud not dense
    path = mcap_file(session.write(tmp_path / "bag", "mcap", version))
    clouds, skeletons, statics, qos = [], [], [], {}
    with path.open("rb") as file:
        reader = make_reader(file, decoder_factories=[DecoderFactory()])
        for _, channel, message, decoded in reader.iter_decoded_messages():
            qos[channel.topic] = yaml.safe_load(channel.metadata["offered_qos_profiles"])
            assert message.log_time == message.publish_time
            if channel.topic == topics.RADAR_POINTS:
                clouds.append((message.log_time, decoded))
            elif channel.topic == topics.TEACHER_SKELETON:
                skeletons.append((message.log_time, decoded))
            else:
                statics.append(decoded)
    assert len(clouds) == len(skeletons) == 12 and len(statics) == 1
    for (log_time, msg), stamp, cloud in zip(clouds, session.stamps.tolist(), session.clouds):
        assert log_time == stamp == msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        assert msg.header.frame_id == FRAME and msg.height == 1 and msg.width == len(cloud)
        assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
            ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 16, 7, 1), ("velocity", 20, 7, 1)]
        assert (msg.point_step, msg.row_step, msg.is_bigendian) == (32, 32 * len(cloud), False)
        assert msg.is_dense == bool(np.isfinite(cloud[:, :3]).all())
        assert bytes(msg.data) == ti_mmwave_bytes(cloud)
    assert not clouds[3][1].is_dense
    for (log_time, msg), positions, rotations in zip(skeletons, session.positions, session.rotations):
        assert log_time == msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        got = np.array([(p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                         p.orientation.z, p.orientation.w) for p in msg.poses])
        np.testing.assert_array_equal(got, np.c_[positions, rotations].astype(np.float64))
    assert [(t.header.frame_id, t.child_frame_id, t.header.stamp.sec) for t in statics[0].transforms] == [
        (t.parent, t.child, STAMP0 // NS) for t in TRANSFORMS]
    translation = statics[0].transforms[0].transform.translation
    assert (translation.x, translation.y, translation.z) == tuple(TRANSFORMS[0].translation)
    # QoS as rosbag2 records it: v9 by name, v8 (Humble, Iron) by enum value.
    static, sensor = qos[topics.TF_STATIC][0], qos[topics.RADAR_POINTS][0]
    if version == 9:
        assert (static["reliability"], static["durability"], static["depth"]) == ("reliable", "transient_local", 1)
        assert (sensor["reliability"], sensor["durability"]) == ("reliable", "volatile")
    else:
        assert (static["reliability"], static["durability"], static["depth"]) == (1, 1, 1)
        assert (sensor["reliability"], sensor["durability"]) == (1, 2)


def test_skeletons_without_rotations_get_identity_orientations(tmp_path):
    positions = np.arange(9, dtype=np.float32).reshape(3, 3)
    with BagWriter(tmp_path / "bag", "sqlite3", 8) as bag:
        bag.write_skeleton(topics.SKELETON, STAMP0, FRAME, positions)
    with BagReader(tmp_path / "bag") as reader:
        skeleton = next(reader.skeletons(topics.SKELETON))
    np.testing.assert_array_equal(skeleton.positions, positions)
    np.testing.assert_array_equal(skeleton.rotations, np.tile([0, 0, 0, 1], (3, 1)))


# -- finding the bag ------------------------------------------------------------------------------------

def test_the_reader_takes_a_directory_a_storage_file_or_metadata_yaml(tmp_path):
    session = Session(5, seed=3)
    mcap_bag = session.write(tmp_path / "m")
    sqlite_bag = session.write(tmp_path / "s", "sqlite3", 8)
    expected = [m.data for m in BagReader(mcap_bag).raw()]
    for path in (mcap_bag, mcap_file(mcap_bag), mcap_bag / "metadata.yaml", sqlite_bag / "s.db3", str(sqlite_bag)):
        with BagReader(path) as reader:
            assert [m.data for m in reader.raw()] == expected, path
    # A recording that was killed has no metadata.yaml; a hand-edited one may not parse.
    (mcap_bag / "metadata.yaml").unlink()
    assert [m.data for m in BagReader(mcap_bag).raw()] == expected
    (sqlite_bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed")
    reader = BagReader(sqlite_bag)
    assert [m.data for m in reader.raw()] == expected
    assert "metadata.yaml cannot be used" in reader.problems[0]


def test_split_bags_and_compressed_messages_read_as_one(tmp_path):
    """A bag split into files (bag_0, bag_1, ..., bag_10: natural order) without metadata.yaml, and
    a bag whose messages rosbag2 compressed one by one."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    sessions = [Session(3, seed=seed) for seed in range(11)]
    split = tmp_path / "split"
    split.mkdir()
    expected = []
    for index in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9):  # written out of order: order comes from the names
        part = sessions[index].write(tmp_path / f"part{index}")
        mcap_file(part).rename(split / f"split_{index}.mcap")
    for session in sessions:
        expected += [bits(cloud).tobytes() for cloud in session.clouds]
    with BagReader(split) as reader:
        assert reader.topics[topics.RADAR_POINTS].count == 33
        assert [bits(m.cloud).tobytes() for m in reader.clouds()] == expected

    compressed_bag = tmp_path / "compressed"
    writer = Writer(compressed_bag, version=9, storage_plugin=StoragePlugin.SQLITE3)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with writer:
        connection = writer.add_connection("/opaque", "std_msgs/msg/String", typestore=get_typestore_humble())
        for index in range(4):
            writer.write(connection, STAMP0 + index, bytes([index]) * 100)
    with BagReader(compressed_bag) as reader:
        assert [m.data for m in reader.raw()] == [bytes([index]) * 100 for index in range(4)]


def get_typestore_humble():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


@pytest.mark.parametrize("name, content, message", [
    ("missing", None, "no such bag"),
    ("empty", "directory", "holds no .mcap or .db3 file"),
    ("notes.txt", b"hi", "not a bag"),
    ("zero.mcap", b"", "not an MCAP file"),
    ("text.mcap", b"hello " * 20, "not an MCAP file"),
    ("text.db3", b"hello " * 20, "not a readable rosbag2 sqlite3"),
])
def test_what_is_no_bag_at_all_is_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(BagError, match=message) as error:
        BagReader(path)
    assert str(path) in str(error.value)


def test_writer_guards(tmp_path):
    path = tmp_path / "bag"
    with BagWriter(path) as bag:
        bag.write_cloud(topics.RADAR_POINTS, STAMP0, FRAME, np.zeros((1, 5), np.float32))
        with pytest.raises(ValueError, match="carries sensor_msgs/msg/PointCloud2"):
            bag.write_skeleton(topics.RADAR_POINTS, STAMP0, FRAME, np.zeros((2, 3)))
        with pytest.raises(TypeError, match="integer nanoseconds"):
            bag.write_cloud(topics.RADAR_POINTS, 1.5, FRAME, np.zeros((1, 5), np.float32))
        with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
            bag.write_cloud(topics.RADAR_POINTS, STAMP0, FRAME, np.zeros((3, 4), np.float32))
        with pytest.raises(ValueError, match="unknown to rosbags"):
            bag.write_raw("/status", VENDOR_TYPE, STAMP0, b"\0\1\0\0")
        with pytest.raises(ValueError, match="needs the fields"):
            bag.write_cloud("/other", STAMP0, FRAME, np.zeros((1, 5), np.float32), layout=POINT_DTYPE[["x", "y"]])
    with pytest.raises(ValueError, match="is closed"):
        bag.write_cloud(topics.RADAR_POINTS, STAMP0, FRAME, np.zeros((1, 5), np.float32))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        BagWriter(path)
    with pytest.raises(ValueError, match="version"):
        BagWriter(tmp_path / "v7", version=7)
    with pytest.raises(ValueError, match="storage"):
        BagWriter(tmp_path / "x", storage="rosbag1")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="holds more than a bag"):
        BagWriter(tmp_path / "home", overwrite=True)
    with BagWriter(path, overwrite=True) as bag:
        bag.write_cloud(topics.RADAR_POINTS, STAMP0 + 5, FRAME, np.ones((2, 5), np.float32))
    assert [c.stamp_ns for c in BagReader(path).clouds()] == [STAMP0 + 5]


def test_a_bag_is_closed_and_readable_after_an_exception_in_the_block(tmp_path):
    with pytest.raises(KeyboardInterrupt), BagWriter(tmp_path / "bag") as bag:
        for index in range(3):
            bag.write_cloud(topics.RADAR_POINTS, STAMP0 + index, FRAME, np.ones((index, 5), np.float32))
        raise KeyboardInterrupt
    with BagReader(tmp_path / "bag") as reader:
        assert reader.problems == [] and len(list(reader.clouds())) == 3


# -- damage ---------------------------------------------------------------------------------------------

def message_spans(path: Path, reader: BagReader) -> list[tuple[int, int, tuple]]:
    """(start, end) byte range of each message's data in the file, with (topic, log time, data).

    Found by searching the file for each message's bytes (unique: random data, distinct stamps),
    in the order written, independently of how the reader walks the file."""
    blob, cursor, spans = path.read_bytes(), 0, []
    for message in reader.raw():
        start = blob.index(message.data, cursor)
        cursor = start + len(message.data)
        spans.append((start, cursor, (message.topic, message.log_time_ns, message.data)))
    return spans


def read_all(reader: BagReader):
    """Every message raw() yields, and the BagError it raises at the end (or None)."""
    got, error = [], None
    try:
        for message in reader.raw():
            got.append((message.topic, message.log_time_ns, message.data))
    except BagError as exc:
        error = exc
    return got, error


@pytest.fixture(scope="module")
def big_mcap(tmp_path_factory):
    """A bag of three MCAP chunks (rosbags starts a chunk every MiB) and its messages' byte spans."""
    bag = Session(900, seed=5).write(tmp_path_factory.mktemp("big") / "bag")
    path = mcap_file(bag)
    with path.open("rb") as file:
        chunks = [(c.chunk_start_offset, c.chunk_start_offset + c.chunk_length)
                  for c in make_reader(file).get_summary().chunk_indexes]
    assert len(chunks) >= 2
    with BagReader(path) as reader:
        spans = message_spans(path, reader)
    return path, chunks, spans


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.9])
def test_a_truncated_mcap_gives_every_complete_message_then_the_error(tmp_path, big_mcap, keep):
    path, _, spans = big_mcap
    blob = path.read_bytes()
    cut = int(len(blob) * keep)
    damaged = tmp_path / "cut.mcap"
    damaged.write_bytes(blob[:cut])
    expected = [message for start, end, message in spans if end <= cut]
    with BagReader(damaged) as reader:
        assert any("no footer" in problem for problem in reader.problems)
        got, error = read_all(reader)
    assert got == expected and len(expected) < len(spans)
    assert error is not None and str(damaged) in str(error)
    assert error.last_good == expected[-1][:2] and error.messages_read == len(expected)
    assert "the file ends at byte" in str(error) and _seconds(expected[-1][1]) in str(error)


def test_an_mcap_without_footer_or_summary_but_with_all_its_data_reads_whole(tmp_path, big_mcap):
    path, chunks, spans = big_mcap
    blob = path.read_bytes()
    summary_start = struct.unpack_from("<Q", blob, len(blob) - 8 - 20)[0]  # from the footer
    for name, size in (("no_footer", len(blob) - 45), ("half_a_summary", summary_start + 30)):
        damaged = tmp_path / f"{name}.mcap"
        damaged.write_bytes(blob[:size])
        with BagReader(damaged) as reader:
            got, error = read_all(reader)
            assert error is None and got == [message for _, _, message in spans], name
            assert any("no footer" in problem for problem in reader.problems)
    # Cut right after the last chunk: the data-end record is gone, so messages may be missing.
    damaged = tmp_path / "at_record_boundary.mcap"
    damaged.write_bytes(blob[:chunks[-1][1]])
    got, error = read_all(BagReader(damaged))
    assert got == [message for _, _, message in spans] and "ends without MCAP data-end record" in str(error)


def chunk_records_length_offset(chunk_start: int) -> int:
    # chunk record: opcode, length, start time, end time, uncompressed size, crc, compression "" (u32 length)
    return chunk_start + 1 + 8 + 8 + 8 + 8 + 4 + 4


@pytest.mark.parametrize("damage", ["message length", "message opcode", "chunk records length"])
def test_damage_inside_a_chunk_costs_the_rest_of_that_chunk_only(tmp_path, big_mcap, damage):
    path, chunks, spans = big_mcap
    blob = bytearray(path.read_bytes())
    first_chunk = [index for index, (start, _, _) in enumerate(spans) if start < chunks[0][1]]
    victim = first_chunk[len(first_chunk) // 3]
    record = spans[victim][0] - 31  # opcode, length, channel, sequence, log time, publish time, data
    if damage == "message length":
        blob[record + 1:record + 9] = struct.pack("<Q", 2**40)
        lost = [i for i in first_chunk if i >= victim]
    elif damage == "message opcode":
        blob[record] = 0x42
        lost = [i for i in first_chunk if i >= victim]
    else:
        offset = chunk_records_length_offset(chunks[0][0])
        blob[offset:offset + 8] = struct.pack("<Q", 2**40)
        lost = first_chunk
    damaged = tmp_path / "damaged.mcap"
    damaged.write_bytes(bytes(blob))
    expected = [message for index, (_, _, message) in enumerate(spans) if index not in set(lost)]
    got, error = read_all(BagReader(damaged))
    assert got == expected
    assert error is not None and str(damaged) in str(error) and f"at byte {chunks[0][0]}" in str(error)
    last_good = spans[lost[0] - 1][2][:2] if lost[0] > 0 else None
    assert error.last_good == last_good and error.messages_read == len(expected)


def test_a_chunk_whose_checksum_fails_is_dropped(tmp_path):
    """rosbag2 (unlike rosbags) writes chunk checksums; a flipped byte anywhere in a chunk shows."""
    from mcap.writer import CompressionType
    from mcap_ros2.writer import Writer as Ros2Writer
    from rosbags.typesys import Stores, get_typestore

    msgdef, _ = get_typestore(Stores.ROS2_HUMBLE).generate_msgdef("std_msgs/msg/String", ros_version=2)
    path = tmp_path / "crc.mcap"
    with path.open("wb") as file:
        writer = Ros2Writer(file, chunk_size=200, compression=CompressionType.NONE)
        schema = writer.register_msgdef("std_msgs/msg/String", msgdef)
        for index in range(30):
            writer.write_message("/chatter", schema, {"data": f"message {index:03d}"}, log_time=STAMP0 + index,
                                 publish_time=STAMP0 + index)
        writer.finish()
    blob = bytearray(path.read_bytes())
    victim = blob.index(b"message 013")
    blob[victim + 8] ^= 0x01
    path.write_bytes(bytes(blob))
    with BagReader(path) as reader:
        got, error = read_all(reader)
    stamps = [log_time - STAMP0 for _, log_time, _ in got]
    assert 13 not in stamps and stamps == sorted(stamps) and 0 in stamps and 29 in stamps
    first_lost = min(set(range(30)) - set(stamps))
    assert "checksum does not match" in str(error) and error.last_good[1] == STAMP0 + first_lost - 1


@pytest.mark.parametrize("damage", ["cut in half", "page overwritten"])
def test_a_damaged_sqlite_bag_gives_what_it_holds_then_the_error(tmp_path, damage):
    session = Session(200, seed=6)
    bag = session.write(tmp_path / "bag", "sqlite3", 8)
    written = [(m.topic, m.log_time_ns, m.data) for m in BagReader(bag).raw()]
    db = bag / "bag.db3"
    blob = bytearray(db.read_bytes())
    if damage == "cut in half":
        blob = blob[:len(blob) // 2]
    else:
        middle = len(blob) // 2 // 4096 * 4096
        blob[middle:middle + 4096] = b"\xa5" * 4096
    db.write_bytes(bytes(blob))
    with BagReader(bag) as reader:
        assert any("damaged" in problem for problem in reader.problems)
        got, error = read_all(reader)
    assert 0 < len(got) < len(written) and set(got) <= set(written)
    assert error is not None and str(bag) in str(error) and "database is damaged" in str(error)
    assert error.last_good == got[-1][:2] and error.messages_read == len(got)


def test_a_sqlite_bag_without_its_first_page_cannot_be_read(tmp_path):
    bag = Session(20).write(tmp_path / "bag", "sqlite3", 9)
    db = bag / "bag.db3"
    blob = bytearray(db.read_bytes())
    blob[100:4096] = b"\xa5" * 3996
    db.write_bytes(bytes(blob))
    with pytest.raises(BagError, match="not a readable rosbag2 sqlite3 database") as error:
        BagReader(bag)
    assert str(bag) in str(error.value)


@pytest.mark.parametrize("storage, version", [("mcap", 9), ("sqlite3", 8)])
def test_a_missing_topic_is_named_with_what_the_bag_has(tmp_path, storage, version):
    bag = Session(3).write(tmp_path / "bag", storage, version)
    reader = BagReader(bag)
    for call in (lambda: reader.clouds("/radar/pointz"), lambda: reader.raw(["/nope", topics.TF_STATIC]),
                 lambda: synchronized(reader, primary="/nope")):
        with pytest.raises(BagError) as error:
            call()  # raised at once, not at the first next()
        text = str(error.value)
        assert str(bag) in text and "has no topic" in text
        assert "/radar/points (sensor_msgs/msg/PointCloud2, 3 messages)" in text
    with pytest.raises(BagError, match="carries geometry_msgs/msg/PoseArray, not sensor_msgs/msg/PointCloud2"):
        reader.clouds(topics.TEACHER_SKELETON)


@pytest.mark.parametrize("storage, version", [("mcap", 9), ("sqlite3", 8)])
def test_an_unknown_message_type_reads_raw_and_refuses_to_decode(tmp_path, storage, version):
    payloads = [b"\x00\x01\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00ok\x00", b"\x00\x01\x00\x00\x01"]
    with BagWriter(tmp_path / "bag", storage, version) as bag:
        bag.write_cloud(topics.RADAR_POINTS, STAMP0, FRAME, np.ones((2, 5), np.float32))
        for index, payload in enumerate(payloads):
            bag.write_raw("/vendor/status", VENDOR_TYPE, STAMP0 + index, payload, msgdef=VENDOR_DEF)
    with BagReader(tmp_path / "bag") as reader:
        assert reader.topics["/vendor/status"].msgtype == VENDOR_TYPE
        assert [m.data for m in reader.raw(["/vendor/status"])] == payloads
        with pytest.raises(BagError, match=f"/vendor/status.*carries {VENDOR_TYPE}"):
            reader.clouds("/vendor/status")
        with pytest.raises(BagError, match=f"messages of type {VENDOR_TYPE} cannot be decoded here"):
            reader.messages(["/vendor/status", topics.RADAR_POINTS])
        assert len(list(reader.clouds())) == 1


def test_an_undecodable_message_is_skipped_and_reported_after_the_rest(tmp_path):
    clouds = [np.full((3, 5), index, np.float32) for index in range(5)]
    broken = bytearray(pointcloud2_cdr(np.zeros(4, TI_MMWAVE), STAMP0 + 2))
    broken[-40:] = b""  # the data no longer holds the 4 points the layout promises
    with BagWriter(tmp_path / "bag") as bag:
        for index, cloud in enumerate(clouds):
            if index == 2:
                bag.write_raw(topics.RADAR_POINTS, "sensor_msgs/msg/PointCloud2", STAMP0 + index, bytes(broken))
            else:
                bag.write_cloud(topics.RADAR_POINTS, STAMP0 + index, FRAME, cloud)
    got = []
    with pytest.raises(BagError, match="cannot be decoded") as error:
        for message in BagReader(tmp_path / "bag").clouds():
            got.append(message)
    assert [m.stamp_ns - STAMP0 for m in got] == [0, 1, 3, 4]
    assert error.value.last_good == (topics.RADAR_POINTS, STAMP0 + 1) and error.value.messages_read == 4


def _seconds(nanoseconds: int) -> str:
    return f"{nanoseconds // NS}.{nanoseconds % NS:09d}"


# -- time synchronisation -------------------------------------------------------------------------------

def nearest(stamp: int, candidates: list, tolerance: int):
    """Brute force: the candidate nearest to ``stamp`` within the tolerance, the earlier on a tie."""
    inside = [c for c in candidates if abs(c.stamp_ns - stamp) <= tolerance]
    return min(inside, key=lambda c: (abs(c.stamp_ns - stamp), c.stamp_ns)) if inside else None


def brute_force(primaries, others: dict, tolerance: int) -> list[tuple[int, dict]]:
    return [(p.stamp_ns, {topic: (None if (m := nearest(p.stamp_ns, messages, tolerance)) is None else m.stamp_ns)
                          for topic, messages in others.items()}) for p in primaries]


def summary(records) -> list[tuple[int, dict]]:
    return [(r.stamp_ns, {t: None if m is None else m.stamp_ns for t, m in r.skeletons.items()}) for r in records]


def test_synchronized_pairs_jittered_late_and_missing_skeletons(tmp_path):
    rng = np.random.default_rng(7)
    session = Session(120, seed=7)
    teacher_stamps = session.stamps + rng.integers(-15_000_000, 15_000_000, len(session.stamps))
    keep = rng.random(len(session.stamps)) > 0.2  # the teacher misses a fifth of the frames
    truth_every = 3
    with BagWriter(tmp_path / "bag") as bag:
        for index, (stamp, cloud) in enumerate(zip(session.stamps.tolist(), session.clouds)):
            bag.write_cloud(topics.RADAR_POINTS, stamp, FRAME, cloud)
            if index % truth_every == 0:
                bag.write_skeleton(topics.GROUND_TRUTH_SKELETON, stamp, FRAME, session.positions[index])
        for index in np.flatnonzero(keep):
            bag.write_skeleton(topics.TEACHER_SKELETON, int(teacher_stamps[index]), FRAME, session.positions[index])
    reader = BagReader(tmp_path / "bag")
    records = list(synchronized(reader, tolerance_s=0.02))
    primaries = list(reader.clouds())
    others = {topics.TEACHER_SKELETON: list(reader.skeletons(topics.TEACHER_SKELETON)),
              topics.GROUND_TRUTH_SKELETON: list(reader.skeletons(topics.GROUND_TRUTH_SKELETON))}
    assert summary(records) == brute_force(primaries, others, 20_000_000)
    assert all(isinstance(r, SyncedRecord) and isinstance(r.primary, CloudMessage) for r in records)
    matched = [r for r in records if r.skeletons[topics.TEACHER_SKELETON] is not None]
    assert len(matched) == keep.sum()  # jitter < tolerance < period: each answer finds its frame
    for record in matched:
        index = int((record.stamp_ns - STAMP0) // PERIOD)
        np.testing.assert_array_equal(record.skeletons[topics.TEACHER_SKELETON].positions, session.positions[index])
        np.testing.assert_array_equal(record.primary.cloud, session.clouds[index])
    truth = [r.skeletons[topics.GROUND_TRUTH_SKELETON] for r in records]
    assert [t is not None for t in truth] == [i % truth_every == 0 for i in range(len(records))]


def skeleton(stamp: int) -> SkeletonMessage:
    return SkeletonMessage(stamp, FRAME, np.zeros((1, 3), np.float32), np.zeros((1, 4), np.float32))


class FakeReader:
    """What synchronized() needs of a BagReader, over messages in memory; counts what was pulled."""

    def __init__(self, streams: dict[str, list[tuple[int, int]]], counted: bool = True):
        """``streams``: topic -> [(stamp, log time)]."""
        self.path = Path("fake.mcap")
        self.problems = [] if counted else ["counts unknown"]
        self.items = sorted((log, index, topic, skeleton(stamp)) for topic, stream in streams.items()
                            for index, (stamp, log) in enumerate(stream))
        self.topics = {topic: SimpleNamespace(count=len(stream), msgtype="geometry_msgs/msg/PoseArray")
                       for topic, stream in streams.items()}
        self.pulled = 0

    def messages(self, wanted):
        def generate():
            for log, _, topic, message in self.items:
                if topic in wanted:
                    self.pulled += 1
                    yield topic, log, message
        return generate()


def test_tolerance_edges_are_inclusive_and_ties_go_to_the_earlier():
    ms = 1_000_000
    primary = [(100 * ms, 0), (200 * ms, 1), (300 * ms, 2), (400 * ms, 3)]
    teacher = [(150 * ms, 1),      # 50 ms from 100 (inside, just) and from 200
               (250 * ms, 2),      # 50 ms from 200 (a tie with 150: the earlier wins) and from 300
               (450 * ms + 1, 3)]  # 1 ns too far from 400
    records = list(synchronized(FakeReader({"/p": primary, "/t": teacher}), "/p", ["/t"], tolerance_s=0.05))
    assert summary(records) == [(100 * ms, {"/t": 150 * ms}), (200 * ms, {"/t": 150 * ms}),
                                (300 * ms, {"/t": 250 * ms}), (400 * ms, {"/t": None})]
    tight = list(synchronized(FakeReader({"/p": primary, "/t": teacher}), "/p", ["/t"], tolerance_s=0.049999999))
    assert summary(tight) == [(t * ms, {"/t": None}) for t in (100, 200, 300, 400)]


@given(data=st.data())
def test_synchronized_agrees_with_brute_force(data):
    ms = 1_000_000
    stamps = st.lists(st.integers(0, 2000), max_size=40).map(lambda xs: [x * ms for x in sorted(xs)])
    primary = data.draw(stamps, "primary")
    others = {topic: data.draw(stamps, topic) for topic in ("/a", "/b")}
    latency = {topic: data.draw(st.integers(0, 3000), f"latency {topic}") * ms for topic in ("/p", "/a", "/b")}
    tolerance = data.draw(st.sampled_from([0, 1, 20, 50, 300]), "tolerance") * ms
    counted = data.draw(st.booleans(), "counts known")
    streams = {"/p": [(s, s + latency["/p"]) for s in primary],
               **{t: [(s, s + latency[t]) for s in stream] for t, stream in others.items()}}
    records = list(synchronized(FakeReader(streams, counted), "/p", ["/a", "/b"], tolerance_s=tolerance / 1e9))
    expected = brute_force([skeleton(s) for s in primary], {t: [skeleton(s) for s in v] for t, v in others.items()},
                           tolerance)
    assert summary(records) == expected


def test_synchronized_streams_and_lets_a_silent_topic_go():
    ms = 1_000_000
    frames = 2000
    primary = [(i * 50 * ms, i * 50 * ms) for i in range(frames)]
    teacher = [(i * 50 * ms, i * 50 * ms + 200 * ms) for i in range(100)]  # answers 0.2 s late, then stops
    reader = FakeReader({"/p": primary, "/t": teacher}, counted=False)
    records = synchronized(reader, "/p", ["/t"], tolerance_s=0.01, max_latency_s=1.0)
    first = next(records)
    assert first.skeletons["/t"].stamp_ns == 0 and reader.pulled < 12  # read only what the first pair needs
    pulled_before = [reader.pulled]
    for _ in records:
        pulled_before.append(reader.pulled)
    assert len(pulled_before) == frames
    # Record k comes out once about k frames were read: the teacher held frames back for its 0.2 s
    # latency, and after it fell silent for at most max_latency_s (20 frames), not to the end.
    ahead = [pulled - index - min(index, 100) for index, pulled in enumerate(pulled_before)]
    assert max(ahead) <= 1.0 / 0.05 + 3


def test_synchronized_defaults_and_refusals(tmp_path):
    session = Session(4)
    bag = session.write(tmp_path / "bag")
    reader = BagReader(bag)
    records = list(synchronized(reader))
    assert list(records[0].skeletons) == [topics.TEACHER_SKELETON]  # the only default partner present
    assert all(r.skeletons[topics.TEACHER_SKELETON].stamp_ns == r.stamp_ns + 1000 for r in records)
    with BagWriter(tmp_path / "alone") as alone:
        alone.write_cloud(topics.RADAR_POINTS, STAMP0, FRAME, session.clouds[0])
    with pytest.raises(BagError, match="has none of"):
        synchronized(BagReader(tmp_path / "alone"))
    with pytest.raises(BagError, match="a topic to pair with it carries geometry_msgs/msg/PoseArray"):
        synchronized(reader, others=[topics.TF_STATIC])
    with pytest.raises(BagError, match="the primary topic carries sensor_msgs/msg/PointCloud2 or geometry_msgs"):
        synchronized(reader, primary=topics.TF_STATIC)
    with pytest.raises(ValueError, match="cannot be one of the others too") as error:
        synchronized(reader, others=[topics.RADAR_POINTS])
    assert not isinstance(error.value, BagError)


def test_synchronized_over_a_damaged_bag_gives_its_records_then_the_error(tmp_path, big_mcap):
    path, _, spans = big_mcap
    blob = path.read_bytes()
    damaged = tmp_path / "cut.mcap"
    damaged.write_bytes(blob[:len(blob) // 2])
    records = []
    with pytest.raises(BagError, match="the file ends at byte"):
        for record in synchronized(BagReader(damaged), tolerance_s=0.01):
            records.append(record)
    complete = [message for start, end, message in spans if end <= len(blob) // 2]
    radar = [m for m in complete if m[0] == topics.RADAR_POINTS]
    assert len(records) == len(radar)
    teacher = {m[1] - 1000 for m in complete if m[0] == topics.TEACHER_SKELETON}
    assert [r.skeletons[topics.TEACHER_SKELETON] is not None for r in records] == [
        r.stamp_ns in teacher for r in records]
