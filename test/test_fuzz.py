"""Fuzzers for the two decoders that read bytes from outside: the TI UART TLV parser
(``radar.ti_uart.TIFrameParser``) and the PointCloud2 decoder (``radar.cloud_layout``:
``pointcloud2_to_array`` and ``CloudDecoder``).

How many examples: every test here runs ``FUZZ_EXAMPLES`` hypothesis examples: 10,000 under the
``ci`` profile (CI runs ``HYPOTHESIS_PROFILE=ci ./dev.sh test``), 500 otherwise, so that a
developer's ``./dev.sh test`` stays quick (about 5 s for the file; about 100 s under ``ci`` on
two cores, hence the ``slow`` mark). The choice follows the profile conftest.py loaded: one that
asks for 1000 or more examples per test is a CI profile. To fuzz as CI does:
``HYPOTHESIS_PROFILE=ci ./dev.sh test test/test_fuzz.py``; ``--hypothesis-show-statistics``
shows which paths the examples reached (the ``event`` lines).

What the fuzzers feed, and what they hold the code to:

- TLV parser, a soup of packet-shaped tokens (SDK-shaped packets keeping the rules or breaking
  one or several, magic words and parts of them, lone headers plausible and absurd, TLV headers,
  random bytes), fed in serial-port-sized chunks to every device setting.
- TLV parser, valid out-of-box-demo packets (``encode_frame``) damaged by bit flips, truncation,
  insertion, deletion, duplicated headers, lying length, count and TLV fields, with junk (random
  bytes, magic words, copies of packet starts) between them.

  For both: nothing raises; the buffer stays under ``max_packet_bytes`` after every feed and is
  empty after ``flush``; every frame is well formed (shapes, dtypes, side-info invariants); the
  frames and the stats counters equal those of ``reference_parse``, a plain whole-stream loop
  over the rules in TIFrameParser's docstring (so they cannot depend on the chunking either).
  For the damaged stream: every packet sent intact comes out exactly, in order, unless a frame
  that came out overran its magic word by under 8 bytes with TLV data (documented).
- PointCloud2 decoder, any layout (all 8 datatypes and unknown ones, counts 0 to 2**32-1,
  overlapping and out-of-range offsets, repeated names, any point_step, row_step, width and
  height, both byte orders, ``is_dense`` either way) over short, exact and long data, as bytes,
  bytearray or a NumPy array: each decoder raises PointCloudError of a kind the message really
  has (or FieldMappingError when x, y or z is missing) with a message, or returns every value
  as a per-point ``struct`` decoding reads it (NaN and inf included), the cloud (N, 5) float32
  and C-contiguous.
- PointCloud2 decoder, round trip: clouds written with ``struct`` from random values (NaN, inf,
  -0 and integer extremes included) in both byte orders, with padding in points and rows,
  decode to those values through ``pointcloud2_to_array`` and through one ``CloudDecoder``
  reused across shapes of one layout (its per-layout plan), on its fast and general paths.

The parser and decoder take any object with the right attributes, so the messages here are
SimpleNamespaces: no rclpy.
"""
from __future__ import annotations

import functools
import math
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from ti_frames import U32, feed_checked

from ros2_radar_pose.radar.cloud_layout import CloudDecoder, PointCloudError, pointcloud2_to_array
from ros2_radar_pose.radar.fields import FieldMappingError, resolve_fields
from ros2_radar_pose.radar.points import FIELDS, INTENSITY
from ros2_radar_pose.radar.ti_uart import (
    DEFAULT_MAX_PACKET_BYTES,
    MAGIC,
    PLATFORMS,
    SDK_VERSION,
    TLV_DETECTED_POINTS,
    TLV_SIDE_INFO,
    TIFrameParser,
    encode_frame,
)

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = 10_000 if settings.default.max_examples >= 1000 else 500
fuzz = settings(max_examples=FUZZ_EXAMPLES, deadline=None)

u32 = st.integers(0, U32)


# ================================================================ TI UART TLV parser

def header_size(stream: bytes, pos: int, device: str) -> int:
    """The header length the parser must assume for the magic word at ``pos`` (TI's rules)."""
    if device == "auto":
        platform = struct.unpack_from("<I", stream, pos + 16)[0] if len(stream) >= pos + 20 else 0
        return 36 if platform == PLATFORMS["xwr14xx"] else 40
    return 36 if device == "xwr14xx" else 40


def magic_positions(stream: bytes) -> list[int]:
    """Where magic words start (they cannot overlap: no proper prefix of MAGIC is a suffix)."""
    found, pos = [], stream.find(MAGIC)
    while pos >= 0:
        found.append(pos)
        pos = stream.find(MAGIC, pos + 1)
    return found


def side_bytes(frame) -> bytes:
    """The side-info TLV payload (int16 snr, noise in tenths of a dB) a frame was decoded from."""
    tenths = np.rint(np.stack([frame.points[:, INTENSITY], frame.noise_db], axis=1)
                     .astype(np.float64) * 10)
    return tenths.astype("<i2").tobytes()


def frame_view(frame) -> tuple:
    """What a frame says, in the terms of the packet: header fields and raw TLV payloads."""
    return (frame.version, frame.platform, frame.frame_number, frame.time_cpu_cycles,
            frame.subframe, frame.points[:, :INTENSITY].astype("<f4").tobytes(),
            side_bytes(frame) if frame.has_side_info else None)


ITEM_BYTES = {TLV_DETECTED_POINTS: 16, TLV_SIDE_INFO: 4}
STAT_COUNTS = ("frames_ok", "bytes_discarded", "frames_truncated", "frames_invalid",
               "point_count_mismatches", "side_info_mismatches", "tlvs_skipped")


def reference_tlvs(packet: bytes, size: int, count: int) -> tuple | None:
    """{type: payload} for types 1 and 7, other TLVs, where they end; None if the packet is
    invalid (a TLV past the end, partial items, a repeat, type 0, 32 or more bytes after)."""
    found, skipped, offset = {}, 0, size
    for _ in range(count):
        if len(packet) - offset < 8:
            return None
        kind, length = struct.unpack_from("<2I", packet, offset)
        offset += 8
        if length > len(packet) - offset or kind == 0:
            return None
        if kind in ITEM_BYTES:
            if length % ITEM_BYTES[kind] or kind in found:
                return None
            found[kind] = packet[offset:offset + length]
        else:
            skipped += 1
        offset += length
    return None if len(packet) - offset >= 32 else (found, skipped, offset)


def reference_parse(stream: bytes, device: str, max_packet_bytes: int) -> tuple[list, dict]:
    """The rules of TIFrameParser's docstring applied to the whole stream by a plain loop: its
    frames (as frame_view tuples) and its counts, to hold the incremental parser to."""
    frames = []
    stats = dict.fromkeys(STAT_COUNTS, 0)
    stats["bytes_discarded"] = len(stream)  # less what good frames take, below
    pos = 0
    while (start := stream.find(MAGIC, pos)) >= 0:
        size = header_size(stream, start, device)
        if len(stream) < start + size:  # the stream ends inside the header
            stats["frames_truncated"] += 1
            break
        head = struct.unpack_from(f"<{(size - len(MAGIC)) // 4}I", stream, start + len(MAGIC))
        total, n_obj, n_tlv = head[1], head[5], head[6]
        if not size <= total <= max_packet_bytes or n_tlv > min(64, (total - size) // 8):
            stats["frames_invalid"] += 1
            pos = start + len(MAGIC)
            continue
        inner = stream.find(MAGIC, start + len(MAGIC), start + total)
        if inner >= 0 or len(stream) < start + total:
            stats["frames_truncated"] += 1
            if inner < 0:
                break
            pos = inner
            continue
        packet = stream[start:start + total]
        tlvs = reference_tlvs(packet, size, n_tlv)
        if tlvs is None:
            stats["frames_invalid"] += 1
            pos = start + len(MAGIC)
            continue
        found, skipped, end = tlvs
        points, side = found.get(TLV_DETECTED_POINTS, b""), found.get(TLV_SIDE_INFO)
        n = len(points) // 16
        stats["point_count_mismatches"] += n_obj != n
        if side is not None and len(side) // 4 != n:
            stats["side_info_mismatches"] += 1
            side = None
        frames.append((head[0], head[2], head[3], head[4], head[7] if size == 40 else None,
                       points, side))
        stats["frames_ok"] += 1
        stats["tlvs_skipped"] += skipped
        # Padding that ends like the start of a magic word is given back.
        back = next((k for k in range(len(MAGIC) - 1, 0, -1)
                     if total - k >= end and packet.endswith(MAGIC[:k])), 0)
        stats["bytes_discarded"] -= total - back
        pos = start + total - back
    return frames, stats


def parse_checked(stream: bytes, device: str, max_packet_bytes: int, chunks: list[int]) -> list:
    """The properties every stream must satisfy, whatever it holds; returns the frames.

    Fed in chunks and compared with the whole-stream reference, so this also checks that the
    results do not depend on the chunking, as documented.
    """
    parser = TIFrameParser(device=device, max_packet_bytes=max_packet_bytes)
    frames = feed_checked(parser, stream, chunks)
    expected, counts = reference_parse(stream, device, max_packet_bytes)
    assert [frame_view(f) for f in frames] == expected
    assert parser.stats.bytes_in == len(stream)
    assert {kind: getattr(parser.stats, kind) for kind in STAT_COUNTS} == counts
    for kind in STAT_COUNTS:
        if kind != "bytes_discarded" and counts[kind]:  # --hypothesis-show-statistics
            event(kind)
    return frames


chunk_sizes = st.lists(st.integers(1, 600), min_size=1, max_size=4)
parser_devices = st.sampled_from(["auto", *PLATFORMS])
max_packet_sizes = st.sampled_from([40, 256, 1024, DEFAULT_MAX_PACKET_BYTES])

tlv_types = st.sampled_from([TLV_DETECTED_POINTS, TLV_SIDE_INFO, 0, 2, 6]) | u32
length_lies = st.integers(-20, 20) | u32
# Each TLV: type, payload (random floats and int16s: NaN, inf, anything), and, in a wild packet,
# whether a points or side-info payload is cut to whole items and how far its length field lies.
tlv_lists = st.lists(st.tuples(tlv_types, st.binary(max_size=64), st.booleans(),
                               st.just(0) | length_lies), max_size=4)
header_lists = st.tuples(st.sampled_from([SDK_VERSION, 0]) | u32,
                         st.sampled_from([PLATFORMS["xwr14xx"], PLATFORMS["xwr18xx"]]) | u32,
                         u32, u32, u32, st.integers(0, 3) | u32)
# What a packet gets wrong: nothing (a third of them, so the soup holds frames to find), one
# thing (where a single broken rule must be caught), or anything at all ("wild").
packet_faults = st.tuples(
    st.sampled_from([None] * 5 + ["tlv_length", "tlv_end", "tlv_type", "total", "n_tlv",
                                  "n_obj", "padding", "wild", "wild"]),
    st.integers(0, 3), length_lies, st.sampled_from([0, TLV_DETECTED_POINTS, TLV_SIDE_INFO]),
    st.integers(0, 40))


@st.composite
def tlv_packets(draw) -> bytes:
    """A packet built like the SDK's, keeping its rules or breaking one or several: TLVs of type
    0, repeated, of partial items, running past the end; lengths, counts and padding that lie."""
    fault, at, lie, bad_type, padding = draw(packet_faults)
    tlvs = draw(tlv_lists)
    if fault != "wild":  # the SDK's rules: whole items, no type 0, no repeats, no lies
        tlvs = [(kind, payload, True, 0) for index, (kind, payload, _, _) in enumerate(tlvs)
                if kind != 0 and kind not in [t[0] for t in tlvs[:index]]]
    if tlvs and fault in ("tlv_length", "tlv_type"):
        kind, payload, _, _ = tlvs[at % len(tlvs)]
        tlvs[at % len(tlvs)] = ((bad_type, payload, True, 0) if fault == "tlv_type"
                                else (kind, payload, True, lie))
    body, points, payload = b"", 0, b""
    for kind, payload, whole, length_lie in tlvs:
        if whole and kind in ITEM_BYTES:
            payload = payload[:len(payload) - len(payload) % ITEM_BYTES[kind]]
        if kind == TLV_DETECTED_POINTS:
            points = len(payload) // 16
        body += struct.pack("<2I", kind, (len(payload) + length_lie) & U32) + payload
    version, platform, number, cycles, n_obj, subframe = draw(header_lists)
    size = 36 if platform == PLATFORMS["xwr14xx"] else 40
    if fault not in ("padding", "wild"):
        padding = -(size + len(body)) % 32  # as the SDK pads
    if tlvs and fault == "tlv_end":  # the last TLV ends a few bytes before or after the packet
        length = len(payload) + padding + lie % 13 - 4
        body = body[:len(body) - len(payload) - 4] + struct.pack("<I", length & U32) + payload
    total = size + len(body) + padding
    n_tlv = len(tlvs)
    if fault in ("total", "wild"):
        total += lie
    if fault in ("n_tlv", "wild"):
        n_tlv += lie % 7 - 3
    if fault not in ("n_obj", "wild"):
        n_obj = points
    head = [version, total & U32, platform, number, cycles, n_obj, n_tlv & U32, subframe]
    return MAGIC + struct.pack("<8I", *head)[:size - 8] + body + bytes(padding)


def header_bytes(version, total, platform, number, cycles, n_obj, n_tlv, subframe) -> bytes:
    return MAGIC + struct.pack("<8I", version, total, platform, number, cycles, n_obj, n_tlv,
                               subframe)


# Packets from the parser's point of view: SDK-shaped packets that bend its rules, magic words,
# lone headers both plausible (sizes that are multiples of 32, a few TLVs, known platforms) and
# absurd, TLV headers of the interesting types, random bytes and zero padding. Pure random bytes
# almost never hold a magic word.
soup_token = tlv_packets() | st.one_of(
    st.binary(min_size=1, max_size=64),
    st.just(MAGIC),
    st.integers(1, 7).map(lambda k: MAGIC[:k]),
    st.integers(1, 40).map(bytes),
    st.builds(header_bytes,
              st.sampled_from([SDK_VERSION, 0]) | u32,
              st.integers(1, 8).map(lambda k: 32 * k) | st.integers(0, 300) | u32,
              st.sampled_from(list(PLATFORMS.values())) | u32,
              u32, u32, st.integers(0, 8) | u32, st.integers(0, 4) | u32, st.integers(0, 3) | u32),
    st.builds(struct.pack, st.just("<2I"), tlv_types,
              st.integers(0, 8).map(lambda k: 16 * k) | st.integers(0, 64) | u32),
)


@fuzz
@given(st.lists(soup_token, min_size=1, max_size=8), st.just("auto") | parser_devices,
       st.just(DEFAULT_MAX_PACKET_BYTES) | max_packet_sizes, chunk_sizes)
def test_tlv_parser_on_packet_shaped_byte_soup(tokens, device, max_packet_bytes, chunks):
    parse_checked(b"".join(tokens), device, max_packet_bytes, chunks)


def replace_magic(data: bytes) -> bytes:
    """``data`` without a magic word, even one formed by removing another."""
    while MAGIC in data:
        data = data.replace(MAGIC, b"")
    return data


extra_tlv_lists = st.lists(st.tuples(st.sampled_from([2, 3, 6, 9]) | st.integers(8, U32),
                                     st.binary(max_size=48).map(replace_magic)), max_size=2)
# Per packet: rng seed, point count, side info or not, extra TLVs (range profile, stats...).
packet_choices = st.tuples(u32, st.integers(0, 6), st.booleans(), extra_tlv_lists)


def demo_packet(device: str, number: int, choice: tuple) -> tuple[bytes, dict]:
    """A valid out-of-box-demo packet and the frame it must decode to (as a dict)."""
    seed, n, side, extra = choice
    rng = np.random.default_rng(seed)
    xyzv = rng.normal(0, 3, (n, 4)).astype(np.float32)
    tenths = rng.integers(-32768, 32768, (n, 2)) if side else None
    # Fields the parser only copies: from the seed, with the counters' extremes among them.
    cycles = int(rng.choice([0, U32, rng.integers(0, U32, endpoint=True)]))
    subframe = int(rng.integers(0, 4))
    version = int(rng.choice([SDK_VERSION, 0, U32]))
    packet = encode_frame(xyzv, number, snr_db=None if tenths is None else tenths[:, 0] / 10,
                          noise_db=None if tenths is None else tenths[:, 1] / 10, device=device,
                          time_cpu_cycles=cycles, subframe=subframe, extra_tlvs=extra,
                          version=version)
    has_side = side and n > 0  # the encoder sends side info only with points, as the SDK does
    return packet, {
        "frame_number": number, "time_cpu_cycles": cycles, "platform": PLATFORMS[device],
        "version": version, "subframe": None if device == "xwr14xx" else subframe,
        "has_side_info": has_side, "xyzv": xyzv, "tenths": tenths if has_side else None,
    }


def splice(data: bytes, pos: int, remove: int, insert: bytes = b"") -> bytes:
    pos %= len(data) + 1
    return data[:pos] + insert + data[pos + remove:]


# Header fields: totalPacketLen, platform, numDetectedObj, numTLVs (the same in both layouts).
HEADER_OFFSETS = [12, 16, 28, 32]
changes = st.integers(-40, 40) | u32.map(lambda v: ("set", v))

mutations = st.one_of(
    st.tuples(st.just("flip"), u32, st.integers(1, 255)),
    st.tuples(st.just("truncate"), u32),
    st.tuples(st.just("insert"), u32, st.binary(min_size=1, max_size=48)),
    st.tuples(st.just("insert"), u32, st.just(MAGIC)),
    st.tuples(st.just("duplicate_header"), u32, st.integers(8, 48)),
    st.tuples(st.just("delete"), u32, st.integers(1, 64)),
    st.tuples(st.just("patch"), st.sampled_from(HEADER_OFFSETS) | st.integers(8, 200), changes),
    st.tuples(st.just("tlv"), st.integers(0, 3), st.sampled_from([0, 4]),
              st.sampled_from([0, TLV_DETECTED_POINTS, TLV_SIDE_INFO]).map(lambda v: ("set", v))
              | changes),
)


def tlv_offset(packet: bytes, index: int) -> int | None:
    """Where the packet's TLV number ``index`` starts, walking the (possibly damaged) chain."""
    if len(packet) < 20:
        return None
    offset = 36 if struct.unpack_from("<I", packet, 16)[0] == PLATFORMS["xwr14xx"] else 40
    for _ in range(index):
        if offset + 8 > len(packet):
            return None
        offset += 8 + struct.unpack_from("<I", packet, offset + 4)[0]
    return offset if offset + 8 <= len(packet) else None


def mutate(packet: bytes, mutation: tuple) -> bytes:
    """Damage a packet; the result may equal the input (a patch that writes the same value)."""
    op, *args = mutation
    if not packet:
        return packet
    if op == "flip":
        where, mask = args[0] % len(packet), args[1]
        return packet[:where] + bytes([packet[where] ^ mask]) + packet[where + 1:]
    if op == "truncate":
        return packet[:args[0] % len(packet)]
    if op == "insert":
        return splice(packet, args[0], 0, args[1])
    if op == "duplicate_header":  # a copy of the packet's own start, garbling what follows
        return splice(packet, args[0], 0, packet[:args[1]])
    if op == "delete":
        return splice(packet, args[0], args[1])
    if op == "tlv":  # the type or length field of one TLV
        index, field_offset, change = args
        offset = tlv_offset(packet, index)
        if offset is None:
            return packet
        offset += field_offset
    else:
        offset, change = args
    if offset + 4 > len(packet):
        return packet
    old = struct.unpack_from("<I", packet, offset)[0]
    new = change[1] if isinstance(change, tuple) else (old + change) & U32
    return packet[:offset] + struct.pack("<I", new) + packet[offset + 4:]


junk_pieces = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.just(MAGIC),
    st.integers(1, 7).map(lambda k: MAGIC[:k]),
    st.tuples(st.just("copy"), st.integers(0, 5), st.integers(8, 400)),  # a packet's start again
)
junk_lists = st.lists(junk_pieces, max_size=2)
stream_choices = st.tuples(parser_devices, u32, st.lists(packet_choices, min_size=1, max_size=4))
damage_lists = st.lists(st.tuples(u32, mutations), max_size=4)
platform_names = st.sampled_from(list(PLATFORMS))


@st.composite
def damaged_streams(draw):
    """Demo packets, some damaged, with junk between them: (stream, parser device,
    max_packet_bytes, [(where a packet sent intact starts, the frame it must give)])."""
    device, first, choices = draw(stream_choices)
    packets, expected = [], []
    for index, choice in enumerate(choices):
        packet_device = draw(platform_names) if device == "auto" else device
        packet, frame = demo_packet(packet_device, (first + index) & U32, choice)
        packets.append(packet)
        expected.append(frame)
    damage = [(index % len(packets), mutation) for index, mutation in draw(damage_lists)]
    damaged = {index for index, _ in damage}
    sent = list(packets)
    for index, mutation in damage:
        sent[index] = mutate(sent[index], mutation)

    def junk() -> bytes:
        return b"".join(packets[p[1] % len(packets)][:p[2]] if isinstance(p, tuple) else p
                        for p in draw(junk_lists))

    stream, starts = bytearray(), []
    for packet in sent:
        stream += junk()
        starts.append(len(stream))
        stream += packet
    stream += junk()
    stream = bytes(stream)

    intact = [(start, expected[index]) for index, start in enumerate(starts)
              if index not in damaged]
    max_packet_bytes = max(max(map(len, packets)), draw(max_packet_sizes))
    return stream, device, max_packet_bytes, intact


def overrun_by_a_frame(stream: bytes, frames: list, start: int, device: str) -> bool:
    """Whether a frame that came out is a packet reaching by under 8 bytes, with TLV data, over
    the magic word at ``start``: the one way the parser may lose an intact packet, documented
    (only padding is given back)."""
    for pos in magic_positions(stream):
        if pos + len(MAGIC) > start:
            return False
        size = header_size(stream, pos, device)
        if len(stream) < pos + size:
            continue
        head = struct.unpack_from("<8I" if size == 40 else "<7I", stream, pos + len(MAGIC))
        total, n_tlv = head[1], head[6]
        if not start < pos + total < start + len(MAGIC):
            continue
        tlvs = reference_tlvs(stream[pos:pos + total], size, n_tlv)
        if tlvs is None or pos + tlvs[2] <= start:
            continue
        said = (head[0], head[2], head[3], head[4], head[7] if size == 40 else None)
        if any(said == (f.version, f.platform, f.frame_number, f.time_cpu_cycles, f.subframe)
               for f in frames):
            return True
    return False


def is_frame(frame, want: dict) -> bool:
    """Whether ``frame`` is exactly the frame ``demo_packet`` described."""
    if (frame.frame_number, frame.time_cpu_cycles, frame.platform, frame.version,
            frame.subframe, frame.has_side_info) != (
            want["frame_number"], want["time_cpu_cycles"], want["platform"], want["version"],
            want["subframe"], want["has_side_info"]):
        return False
    if frame.points.shape != (len(want["xyzv"]), len(FIELDS)):
        return False
    if frame.points[:, :INTENSITY].tobytes() != want["xyzv"].tobytes():
        return False
    if want["tenths"] is None:
        return True
    got = np.rint(np.stack([frame.points[:, INTENSITY], frame.noise_db], axis=1) * 10.0)
    return bool((got == want["tenths"]).all())


@fuzz
@given(damaged_streams(), chunk_sizes)
def test_tlv_parser_on_damaged_demo_packets(case, chunks):
    stream, device, max_packet_bytes, intact = case
    frames = parse_checked(stream, device, max_packet_bytes, chunks)
    # Every packet sent intact comes out intact, in order, whatever damage and junk surround it,
    # unless a frame that came out overran its magic word. Junk may hold whole copies of packets,
    # so a first-fit match can take a copy for a lost packet: search every in-order matching.
    overrun = [overrun_by_a_frame(stream, frames, start, device) for start, _ in intact]

    @functools.cache
    def least_lost(i: int, j: int) -> float:
        """Fewest intact packets from i on lost (all overrun) when outputs from j on are left."""
        if i == len(intact):
            return 0
        best = 1 + least_lost(i + 1, j) if overrun[i] else math.inf
        found = next((k for k in range(j, len(frames)) if is_frame(frames[k], intact[i][1])), None)
        return best if found is None else min(best, least_lost(i + 1, found + 1))

    lost = least_lost(0, 0)
    assert lost != math.inf, (
        "an intact packet did not come out (in order) and no frame that came out overran it: "
        f"starts {[start for start, _ in intact]}, overrun {overrun}, "
        f"out {[frame.frame_number for frame in frames]}")
    event(f"intact packets: {min(len(intact), 3)}{'+' if len(intact) >= 3 else ''}")
    if lost:
        event("an intact packet overrun by a frame reaching into its magic word")


# ================================================================ PointCloud2 decoder

SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 8}
STRUCT = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 8: "d"}
NAMES = ["x", "y", "z", "velocity", "doppler", "intensity", "snr", "rgb", "", "f0", "x y", "ß\x00"]


def field(name: str, offset: int, datatype: int, count: int) -> SimpleNamespace:
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


def cloud_msg(fields, point_step, row_step, height, width, is_bigendian, data,
              is_dense=True) -> SimpleNamespace:
    return SimpleNamespace(height=height, width=width, fields=fields, is_bigendian=is_bigendian,
                           point_step=point_step, row_step=row_step, data=data, is_dense=is_dense)


def layout_faults(msg) -> set[str]:
    """The PointCloudError kinds that fit this message (empty: it must decode)."""
    faults, names, step = set(), set(), max(msg.point_step, 1)
    if step > 2**31 - 1:  # NumPy keeps a dtype's size in a C int
        faults.add("bad_layout")
    for f in msg.fields:
        if f.datatype not in SIZES:
            faults.add("unknown_datatype")
            continue
        if f.name in names or f.offset + SIZES[f.datatype] * max(f.count, 1) > step:
            faults.add("bad_layout")
        names.add(f.name)
    if msg.height * msg.width:
        if msg.point_step <= 0 or msg.row_step < msg.width * msg.point_step:
            faults.add("bad_layout")
        elif len(msg.data) < (msg.height - 1) * msg.row_step + msg.width * msg.point_step:
            faults.add("short_data")
    return faults


def struct_values(msg) -> dict[str, list[tuple]]:
    """Per field, the values of each point (row-major), read one by one with struct."""
    order = ">" if msg.is_bigendian else "<"
    data = bytes(msg.data)
    out = {}
    for f in msg.fields:
        unpack = struct.Struct(order + STRUCT[f.datatype] * max(f.count, 1)).unpack_from
        # By point index, not rows x columns: 2**31 rows of no columns are no work.
        out[f.name] = [unpack(data, index // msg.width * msg.row_step
                              + index % msg.width * msg.point_step + f.offset)
                       for index in range(msg.height * msg.width)]
    return out


def check_decoders(msg, max_points: int | None) -> None:
    """Both decoders on one message against the struct oracle: the right error or the right values."""
    faults = layout_faults(msg)
    count = msg.height * msg.width
    try:
        points = pointcloud2_to_array(msg)
    except PointCloudError as exc:
        assert exc.kind in faults and str(exc), (exc.kind, str(exc), faults)
        event(f"pointcloud2_to_array: {exc.kind}")
        points = None
    else:
        assert not faults, f"decoded a cloud with faults {faults}"
        check_array(msg, points)
        event("pointcloud2_to_array: " + ("empty array" if count == 0 else "points"))

    try:
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf
            cloud = CloudDecoder(max_points=max_points)(msg)
    except PointCloudError as exc:
        allowed = faults | ({"too_many_points"} if max_points is not None
                            and count > max_points else set())
        assert exc.kind in allowed and str(exc), (exc.kind, str(exc), allowed)
        event(f"CloudDecoder: {exc.kind}")
        return
    except FieldMappingError as exc:
        assert str(exc)
        event("CloudDecoder: FieldMappingError")
        try:
            resolve_fields([f.name for f in msg.fields])
        except FieldMappingError:
            return
        raise AssertionError(f"FieldMappingError for fields {[f.name for f in msg.fields]}") from exc
    assert points is not None, "CloudDecoder decoded a message pointcloud2_to_array refuses"
    assert max_points is None or count <= max_points
    event("CloudDecoder: " + ("empty cloud" if count == 0 else "points"))
    assert cloud.dtype == np.float32 and cloud.shape == (count, len(FIELDS))
    assert cloud.flags.c_contiguous
    mapping = resolve_fields(points.dtype.names)
    expected = np.zeros((count, len(FIELDS)), dtype=np.float64)
    oracle = struct_values(msg)
    for column, source in enumerate(mapping.sources):
        if source is not None:
            expected[:, column] = [values[0] for values in oracle[source]]
    with np.errstate(over="ignore", invalid="ignore"):
        np.testing.assert_array_equal(cloud, expected.astype(np.float32))


def check_array(msg, points: np.ndarray) -> None:
    count = msg.height * msg.width
    assert points.shape == (count,)
    assert points.dtype.names == tuple(f.name for f in msg.fields)
    assert points.dtype.itemsize == max(msg.point_step, 1)
    if count:
        organized = pointcloud2_to_array(msg, organized=True)
        assert organized.shape == (msg.height, msg.width)
        # Field by field: bytes between fields are padding, which a copy need not carry.
        for f in msg.fields:
            assert organized[f.name].reshape(-1).tobytes() == points[f.name].reshape(-1).tobytes()
    oracle = struct_values(msg)
    for f in msg.fields:
        got = points[f.name].reshape(count, max(f.count, 1))
        # Random bytes can be signalling NaNs, whose widening raises "invalid" and stays NaN.
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(got.astype(np.float64),
                                          np.array(oracle[f.name], dtype=np.float64).reshape(got.shape))


def mostly(common, rare, odds: int = 6):
    """``common``, except one time in ``odds`` ``rare`` (which hypothesis shrinks away from).

    one_of picks its branches evenly and merges equal ones, hence distinct copies of ``common``.
    """
    return st.one_of([common.map(lambda value, _copy=copy: value) for copy in range(odds - 1)]
                     + [rare])


big = st.sampled_from([2**31, U32])  # uint32 fields beyond what NumPy sizes hold
# Fields follow one another with gaps (negative: overlapping the previous one); one in five or so
# is broken: an offset out of range, an unknown datatype, an absurd count, a repeated name.
any_fields = st.lists(st.tuples(st.sampled_from(NAMES), st.integers(1, 8), st.integers(0, 3),
                                st.integers(-6, 6),
                                st.sampled_from([None] * 16 + ["offset", "datatype", "count", "name"]),
                                st.integers(0, 80) | st.sampled_from([0, 9, 255, 2**31, U32])),
                      max_size=6, unique_by=lambda f: f[0])
# point_step: the fields' end plus padding (-1: one byte short), else any value; row_step:
# width * point_step plus padding (-1 again), else any value; data: about the size the layout
# needs (a few bytes short or long), else any size, its bytes a pattern repeated. (Hypothesis
# prefers branches it has not explored yet, so a small common branch needs high odds.)
cloud_shapes = st.tuples(st.booleans(),
                         mostly(st.integers(-1, 8).map(lambda pad: ("pad", pad)),
                                (st.integers(0, 48) | st.sampled_from([2**31 - 1, 2**31, U32]))
                                .map(lambda value: ("any", value)), odds=10),
                         mostly(st.integers(1, 4), st.just(0) | big, odds=8),
                         mostly(st.integers(1, 12), st.just(0) | big, odds=8),
                         mostly(st.integers(-1, 8).map(lambda pad: ("pad", pad)),
                                (st.integers(0, 200) | big).map(lambda value: ("any", value)), odds=12),
                         mostly((st.sampled_from([-1, 0]) | st.integers(-8, 8)).map(lambda d: ("near", d)),
                                st.integers(0, 300).map(lambda n: ("any", n)), odds=4),
                         st.binary(max_size=32), st.booleans(), st.booleans())


def as_numpy(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8)


data_types = st.sampled_from([bytes, bytearray, as_numpy])  # rclpy, tests, rosbags


@st.composite
def any_clouds(draw):
    """Any PointCloud2-shaped message: layouts valid or not, data short, exact or long."""
    fields, cursor, end = [], 0, 0
    radar, step, height, width, row, size, pattern, bigendian, dense = draw(cloud_shapes)
    for index, (name, datatype, count, gap, fault, wild) in enumerate(draw(any_fields)):
        offset = max(cursor + gap, 0)
        cursor = offset + SIZES[datatype] * max(count, 1)
        end = max(end, cursor)
        if fault == "offset":
            offset = wild
        elif fault == "datatype":
            datatype = wild
        elif fault == "count":
            count = wild
        elif fault == "name" and fields:
            name = fields[-1].name
        if radar and index < 3:  # x, y and z, so CloudDecoder has a cloud to map
            name = "xyz"[index]
        elif radar and name in ("x", "y", "z") and fault != "name":
            name += "'"
        fields.append(field(name, offset, datatype, count))
    for name in "xyz"[len(fields):] if radar else "":
        fields.append(field(name, end, 7, 1))
        end += 4
    point_step = min(U32, max(end + step[1], 0) if step[0] == "pad" else step[1])
    row_step = min(U32, max(width * point_step + row[1], 0) if row[0] == "pad" else row[1])
    needed = (height - 1) * row_step + width * point_step if height * width else 0
    if size[0] == "near":
        size = max(needed + size[1], 0) if needed <= 4000 else size[1] + 8
    else:
        size = size[1]
    data = (pattern * (size // max(len(pattern), 1) + 1))[:size] if pattern else bytes(size)
    return cloud_msg(fields, point_step, row_step, height, width, bigendian,
                     draw(data_types)(data), is_dense=dense)


@fuzz
@given(any_clouds(), mostly(st.none(), st.integers(0, 64), odds=4))
def test_pointcloud2_decoder_on_any_layout_and_data(msg, max_points):
    check_decoders(msg, max_points)


RADAR_NAMES = ["velocity", "doppler", "intensity", "snr", "power", "ring", "rgb"]


def random_values(rng: np.random.Generator, datatype: int, shape) -> np.ndarray:
    """Values of a datatype, exactly representable in it, extremes and specials included."""
    kind = np.dtype(STRUCT[datatype])
    if datatype <= 6:
        info = np.iinfo(kind)
        values = rng.integers(info.min, info.max, shape, endpoint=True, dtype=np.int64)
        extremes = [info.min, info.max, 0]
    else:
        values = rng.normal(0, 1e3, shape).astype(kind)
        extremes = [np.nan, np.inf, -np.inf, -0.0, np.finfo(kind).max, np.finfo(kind).tiny]
    special = rng.random(shape) < 0.1
    values = values.astype(np.float64)
    values[special] = rng.choice(np.array(extremes, dtype=np.float64), int(special.sum()))
    return values


# Hypothesis picks the kind of layout; the layout's details and the values come from a seeded
# generator, which keeps 10,000 examples affordable (hypothesis' own draws cost the most here;
# test_pointcloud2_decoder_on_any_layout_and_data walks layouts draw by draw).
layout_choices = st.tuples(st.lists(st.sampled_from(RADAR_NAMES), unique=True, max_size=3),
                           st.booleans(), st.booleans(), st.booleans(), u32)


@st.composite
def well_formed_clouds(draw):
    """Messages of one layout in several shapes, and the values each was written from (struct)."""
    extra, aligned, mixed, is_bigendian, seed = draw(layout_choices)
    rng = np.random.default_rng(seed)
    names = [str(name) for name in rng.permutation(["x", "y", "z", *extra])]
    fields, offset = [], 0
    for name in names:
        if aligned:  # float32 at 4-byte offsets: the decoder's gather fast path
            datatype, count, gap = 7, 1, 4 * int(rng.integers(0, 2))
        else:
            datatype = int(rng.integers(1, 9)) if mixed else 7
            count, gap = int(rng.integers(1, 4)), int(rng.integers(0, 6))
        offset += gap
        fields.append(field(name, offset, datatype, count))
        offset += SIZES[datatype] * count
    point_step = offset + int(4 * rng.integers(0, 3) if aligned else rng.integers(0, 9))
    order = ">" if is_bigendian else "<"
    messages = []
    for _ in range(int(rng.integers(1, 4))):
        height, width = int(rng.integers(1, 4)), int(rng.integers(0, 13))
        row_step = width * point_step + int(rng.integers(0, 9))
        data = bytearray(rng.integers(0, 256, height * row_step, dtype=np.uint8).tobytes())
        values = {f.name: random_values(rng, f.datatype, (height * width, f.count)) for f in fields}
        for index in range(height * width):
            base = (index // width) * row_step + (index % width) * point_step
            for f in fields:
                row = values[f.name][index]
                struct.pack_into(order + STRUCT[f.datatype] * f.count, data, base + f.offset,
                                 *(int(v) if f.datatype <= 6 else float(v) for v in row))
        dense = all(not math.isnan(v) for n in "xyz" for v in values[n][:, 0])
        messages.append((cloud_msg(fields, point_step, row_step, height, width, is_bigendian,
                                   bytes(data), is_dense=dense), values))
    return messages


@fuzz
@given(well_formed_clouds())
def test_pointcloud2_round_trip_of_random_clouds_in_both_byte_orders(messages):
    decoder = CloudDecoder()  # one decoder: its per-layout plan is reused across shapes
    for msg, values in messages:
        points = pointcloud2_to_array(msg)
        count = msg.height * msg.width
        for name, want in values.items():
            np.testing.assert_array_equal(points[name].reshape(want.shape).astype(np.float64),
                                          want)
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf
            cloud = decoder(msg)
        mapping = resolve_fields([f.name for f in msg.fields])
        expected = np.zeros((count, len(FIELDS)), dtype=np.float32)
        for column, source in enumerate(mapping.sources):
            if source is not None:
                with np.errstate(over="ignore"):
                    expected[:, column] = values[source][:, 0]
        assert cloud.shape == (count, len(FIELDS)) and cloud.dtype == np.float32
        assert cloud.flags.c_contiguous  # what radar.points calls a cloud
        np.testing.assert_array_equal(cloud, expected)
        gather = (not msg.is_bigendian and msg.point_step % 4 == 0
                  and all(f.datatype == 7 and f.count == 1 and f.offset % 4 == 0
                          for f in msg.fields if f.name in mapping.sources))
        event("float32 words (fast path)" if gather else "structured path")
