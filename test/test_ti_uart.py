"""TI mmWave UART parser: round trips with the encoder, resynchronisation, robustness, byte sources."""
import itertools
import struct
import time

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st
from ti_frames import feed_checked

from ros2_radar_pose.radar.ti_uart import (
    MAGIC,
    PLATFORMS,
    SDK_VERSION,
    FileByteSource,
    RadarConfigError,
    SerialRadar,
    TIFrameParser,
    encode_frame,
    iter_frames,
    read_config_lines,
    ti_to_ros_axes,
)

# Byte offsets of header fields in a packet (both layouts agree up to numTLVs).
TOTAL_LEN, N_OBJ, N_TLV = 12, 28, 32
FIRST_TLV = 40


def points_for(seed: int, n: int) -> np.ndarray:
    """(n, 4) float32 points that differ per seed."""
    return np.random.default_rng(seed).normal(0, 3, (n, 4)).astype(np.float32)


def frame_bytes(number: int, n: int = 3, side: bool = True, **kw) -> bytes:
    """A packet with n points; SNR and noise are whole tenths of a dB so they survive exactly."""
    snr = np.arange(n) * 1.5 + 0.3 if side else None
    noise = np.arange(n) * -0.7 + 40.0 if side else None
    return encode_frame(points_for(number, n), number, snr_db=snr, noise_db=noise, **kw)


def patched(packet: bytes, offset: int, value: int) -> bytes:
    """The packet with the uint32 at offset replaced."""
    out = bytearray(packet)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


def parse(stream: bytes, chunk: int | None = None, **kw):
    """Frames of a whole stream fed in chunks (all at once by default), and the parser, flushed."""
    parser = TIFrameParser(**kw)
    step = chunk or max(len(stream), 1)
    frames = [f for i in range(0, len(stream), step) for f in parser.feed(stream[i:i + step])]
    frames += parser.flush()
    return frames, parser


def key(frame) -> tuple:
    """Everything a frame says, comparable (NaN-safe through the raw bytes)."""
    return (frame.frame_number, frame.subframe, frame.time_cpu_cycles, frame.platform,
            frame.version, frame.has_side_info, frame.points.shape,
            frame.points.tobytes(), frame.noise_db.tobytes())


def numbers(frames) -> list[int]:
    return [f.frame_number for f in frames]


def garbage(data: bytes) -> bytes:
    """Random bytes made free of any magic word."""
    return data.replace(MAGIC, b"")


# ---------------------------------------------------------------- encode / decode round trip

def test_round_trip_with_side_info():
    xyzv = np.array([[1.0, 2.0, 0.5, -0.25], [-3.5, 4.0, 1.0, 2.0], [0.0, 0.1, -0.2, 0.0]],
                    dtype=np.float32)
    packet = encode_frame(xyzv, 42, snr_db=[12.3, -5.0, 0.1], noise_db=[40.0, 38.5, 0.0],
                          device="xwr68xx", time_cpu_cycles=123456789, subframe=2)
    # 40 header + (8 + 48) points + (8 + 12) side info = 116, padded to 128.
    assert len(packet) == 128
    assert struct.unpack_from("<8I", packet, 8) == (SDK_VERSION, 128, 0xA6843, 42, 123456789,
                                                   3, 2, 2)
    assert packet[116:] == bytes(12)

    frames, parser = parse(packet)
    assert len(frames) == 1
    f = frames[0]
    assert (f.frame_number, f.subframe, f.time_cpu_cycles, f.platform, f.version) == (
        42, 2, 123456789, 0xA6843, SDK_VERSION)
    assert f.has_side_info
    assert f.points.dtype == np.float32 and f.points.shape == (3, 5)
    np.testing.assert_array_equal(f.points[:, :4], xyzv)
    tenth = np.float32(0.1)
    np.testing.assert_array_equal(f.points[:, 4], np.array([123, -50, 1], np.float32) * tenth)
    np.testing.assert_array_equal(f.noise_db, np.array([400, 385, 0], np.float32) * tenth)
    np.testing.assert_allclose(f.points[:, 4], [12.3, -5.0, 0.1], atol=1e-6)
    assert f.noise_db.dtype == np.float32
    assert parser.stats.frames_ok == 1 and parser.stats.bytes_in == 128
    assert parser.stats.bytes_discarded == 0 and parser.stats.last_error == ""
    assert parser.buffered == 0


def test_without_side_info_intensity_is_zero_and_noise_nan():
    packet = frame_bytes(5, n=4, side=False)
    assert struct.unpack_from("<I", packet, N_TLV)[0] == 1
    (f,), parser = parse(packet)
    assert not f.has_side_info
    np.testing.assert_array_equal(f.points[:, :4], points_for(5, 4))
    np.testing.assert_array_equal(f.points[:, 4], np.zeros(4, np.float32))
    assert f.noise_db.shape == (4,) and np.isnan(f.noise_db).all()
    assert parser.stats.frames_ok == 1


def test_snr_without_noise_sends_zero_noise_and_noise_alone_is_refused():
    (f,), _ = parse(encode_frame(points_for(0, 2), 0, snr_db=[3.0, 4.0]))
    np.testing.assert_array_equal(f.noise_db, [0.0, 0.0])
    np.testing.assert_array_equal(f.points[:, 4], np.array([30, 40], np.float32) * np.float32(0.1))
    with pytest.raises(ValueError, match="snr_db"):
        encode_frame(points_for(0, 2), 0, noise_db=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        encode_frame(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="device"):
        encode_frame(points_for(0, 2), 0, device="auto")


def test_snr_saturates_at_int16():
    (f,), _ = parse(encode_frame(points_for(0, 2), 0, snr_db=[1e6, -1e6]))
    np.testing.assert_array_equal(f.points[:, 4], np.array([32767, -32768], np.float32)
                                  * np.float32(0.1))


@pytest.mark.parametrize("device", ["auto", "xwr14xx"])
def test_xwr14xx_has_a_36_byte_header_and_no_subframe(device):
    packet = frame_bytes(9, n=2, device="xwr14xx", subframe=5)
    # 36 header + 8 + 32 + 8 + 8 = 92, padded to 96; the first TLV follows the shorter header.
    assert len(packet) == 96
    assert struct.unpack_from("<7I", packet, 8) == (SDK_VERSION, 96, 0xA1443, 9, 0, 2, 2)
    assert struct.unpack_from("<2I", packet, 36) == (1, 32)
    frames, parser = parse(packet + frame_bytes(10, n=1, device="xwr14xx"), device=device)
    assert numbers(frames) == [9, 10]
    assert frames[0].subframe is None and frames[0].platform == 0xA1443
    np.testing.assert_array_equal(frames[0].points[:, :4], points_for(9, 2))
    assert parser.stats.frames_invalid == 0


@pytest.mark.parametrize("device", ["xwr16xx", "xwr18xx", "xwr68xx"])
def test_auto_reads_40_byte_headers_of_other_platforms(device):
    frames, _ = parse(frame_bytes(1, device=device, subframe=3), device="auto")
    assert [(f.platform, f.subframe) for f in frames] == [(PLATFORMS[device], 3)]


def test_a_14xx_stream_read_as_xwr18xx_is_invalid_not_a_crash():
    frames, parser = parse(frame_bytes(1, device="xwr14xx"), device="xwr18xx")
    assert frames == [] and parser.stats.frames_invalid == 1


def test_unknown_tlvs_are_skipped():
    extra = [(2, bytes(range(64))), (6, b"\x01" * 24), (1000, b"xyz")]
    packet = frame_bytes(3, extra_tlvs=extra)
    assert struct.unpack_from("<I", packet, N_TLV)[0] == 5
    (f,), parser = parse(packet)
    np.testing.assert_array_equal(f.points[:, :4], points_for(3, 3))
    assert f.has_side_info
    assert parser.stats.tlvs_skipped == 3 and parser.stats.frames_ok == 1


def test_zero_point_frames():
    packet = encode_frame(np.zeros((0, 4), np.float32), 8, snr_db=[])
    assert len(packet) == 64 and struct.unpack_from("<2I", packet, N_OBJ) == (0, 0)
    frames, parser = parse(packet + frame_bytes(9))
    assert numbers(frames) == [8, 9]
    assert frames[0].points.shape == (0, 5) and frames[0].points.dtype == np.float32
    assert frames[0].noise_db.shape == (0,)
    assert parser.stats.point_count_mismatches == 0 and parser.stats.frames_ok == 2


def test_frame_number_and_cycles_wrap_like_the_radar():
    (f,), _ = parse(encode_frame(points_for(0, 1), 2**32 + 5, time_cpu_cycles=2**33 + 7))
    assert (f.frame_number, f.time_cpu_cycles) == (5, 7)


# ---------------------------------------------------------------- chunking

def stream_of(count: int, start: int = 0) -> bytes:
    return b"".join(frame_bytes(i, n=i % 4, side=i % 2 == 0) for i in range(start, start + count))


def test_one_byte_at_a_time_equals_all_at_once():
    stream = b"junk" + stream_of(6) + MAGIC[:5] + stream_of(2, 6) + b"tail"
    whole, p_whole = parse(stream)
    bytewise, p_bytes = parse(stream, chunk=1)
    assert numbers(whole) == list(range(8))
    assert [key(f) for f in bytewise] == [key(f) for f in whole]
    assert p_bytes.stats == p_whole.stats
    assert p_whole.stats.bytes_discarded == 4 + 5 + 4


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_chunking_gives_the_same_frames_and_stats(data):
    # Damage too (truncations, byte flips), so resynchronisation is exercised under chunking.
    packets = [frame_bytes(i, n=i % 4) for i in range(6)]
    packets = [p[:data.draw(st.integers(8, len(p)))] if data.draw(st.booleans()) else p
               for p in packets]
    stream = bytearray(b"".join(packets))
    for _ in range(data.draw(st.integers(0, 2))):
        stream[data.draw(st.integers(0, len(stream) - 1))] ^= data.draw(st.integers(1, 255))
    stream = bytes(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    parser = TIFrameParser()
    chunked = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        chunked += parser.feed(stream[a:b])
    chunked += parser.flush()
    whole, p_whole = parse(stream)
    assert [key(f) for f in chunked] == [key(f) for f in whole]
    assert parser.stats == p_whole.stats


@pytest.mark.parametrize("chunk", [None, 1, 3, 64])
def test_consecutive_truncated_frames_in_any_chunking(chunk):
    stream = frame_bytes(0)[:100] + frame_bytes(1)[:50] + frame_bytes(2)[:60] + frame_bytes(3)
    frames, parser = parse(stream, chunk=chunk)
    assert numbers(frames) == [3]
    assert parser.stats.frames_truncated == 3 and parser.stats.bytes_discarded == 210


# ---------------------------------------------------------------- resynchronisation

def test_garbage_before_and_between_frames_is_counted_exactly():
    junk = [b"\xff" * 13, b"\x02\x01\x04", b"hello radar", MAGIC[:7], b""]
    stream = b"".join(j + frame_bytes(i) for i, j in enumerate(junk)) + b"\x00" * 5
    frames, parser = parse(stream)
    assert numbers(frames) == [0, 1, 2, 3, 4]
    assert parser.stats.bytes_discarded == sum(map(len, junk)) + 5
    assert parser.stats.frames_truncated == parser.stats.frames_invalid == 0
    assert parser.stats.last_error == ""


def test_garbage_without_magic_keeps_only_seven_bytes():
    parser = TIFrameParser()
    assert parser.feed(b"\x00" * 10_000 + MAGIC[:7]) == []
    assert parser.buffered == 7 and parser.stats.bytes_discarded == 10_000
    # The kept prefix joins the next chunk into a magic word.
    (f,) = parser.feed(frame_bytes(1)[7:])
    assert f.frame_number == 1 and parser.stats.bytes_discarded == 10_000


@pytest.mark.parametrize("cut", [8, 20, 39, 50, 115])
def test_truncated_frame_is_dropped_and_the_next_survive(cut):
    stream = frame_bytes(0)[:cut] + frame_bytes(1) + frame_bytes(2)
    frames, parser = parse(stream)
    assert numbers(frames) == [1, 2]
    assert parser.stats.frames_truncated + parser.stats.frames_invalid == 1
    assert parser.stats.bytes_discarded == cut
    if cut >= 40:  # a whole header: the inner magic word tells the truncation
        assert parser.stats.frames_truncated == 1
        assert "new packet starts at byte" in parser.stats.last_error_by_kind["frames_truncated"]


def test_losing_only_padding_bytes_costs_no_frame():
    # Frame 0 ends in padding (its TLVs end at byte 116); the next magic word is 1 byte early.
    stream = frame_bytes(0)[:127] + frame_bytes(1)
    frames, parser = parse(stream, chunk=1)
    assert numbers(frames) == [0, 1]
    np.testing.assert_array_equal(frames[0].points[:, :4], points_for(0, 3))
    assert parser.stats.bytes_discarded == 0 and parser.stats.frames_truncated == 0


def test_truncated_frame_at_the_end_counts_on_flush():
    parser = TIFrameParser()
    assert numbers(parser.feed(frame_bytes(0) + frame_bytes(1)[:60])) == [0]
    assert parser.buffered == 60 and parser.stats.frames_truncated == 0
    assert parser.flush() == []
    assert parser.stats.frames_truncated == 1 and parser.stats.bytes_discarded == 60
    assert parser.buffered == 0
    # The parser goes on with a new stream after a flush.
    assert numbers(parser.feed(frame_bytes(2))) == [2]


def test_length_too_large_is_truncated_at_the_next_magic():
    bad = patched(frame_bytes(0), TOTAL_LEN, 128 + 64)
    frames, parser = parse(bad + frame_bytes(1) + frame_bytes(2))
    assert numbers(frames) == [1, 2]
    assert parser.stats.frames_truncated == 1 and parser.stats.bytes_discarded == 128


def test_length_too_large_by_a_few_bytes_keeps_both_frames():
    # The claimed packet ends 3 bytes into the next magic word; its padding gives them back.
    bad = patched(frame_bytes(0), TOTAL_LEN, 128 + 3)
    frames, parser = parse(bad + frame_bytes(1), chunk=1)
    assert numbers(frames) == [0, 1]
    assert parser.stats.bytes_discarded == 0 and parser.stats.frames_ok == 2


def test_a_huge_claimed_length_does_not_hold_back_the_next_frame():
    parser = TIFrameParser(max_packet_bytes=1 << 20)
    bad = patched(frame_bytes(0), TOTAL_LEN, 1 << 20)
    assert numbers(parser.feed(bad + frame_bytes(1))) == [1]
    assert parser.stats.frames_truncated == 1


@pytest.mark.parametrize("claimed, kind", [(96, "runs past"), (20, "header claims 20 bytes"),
                                           (1 << 30, "header claims")])
def test_length_too_small_or_absurd_is_invalid(claimed, kind):
    bad = patched(frame_bytes(0), TOTAL_LEN, claimed)
    frames, parser = parse(bad + frame_bytes(1))
    assert numbers(frames) == [1]
    assert parser.stats.frames_invalid == 1 and parser.stats.frames_truncated == 0
    assert parser.stats.bytes_discarded == 128
    assert kind in parser.stats.last_error_by_kind["frames_invalid"]


@pytest.mark.parametrize("tlv_length, kind", [(17, "not a multiple of 16"),
                                              (10_000, "runs past"),
                                              (32, "runs past")])
def test_lying_tlv_length_is_invalid(tlv_length, kind):
    # (32: one point short, so the side-info header is read from point data.)
    good = frame_bytes(0)
    assert struct.unpack_from("<2I", good, FIRST_TLV) == (1, 48)
    bad = patched(good, FIRST_TLV + 4, tlv_length)
    frames, parser = parse(frame_bytes(7) + bad + frame_bytes(1))
    assert numbers(frames) == [7, 1]
    assert parser.stats.frames_invalid == 1 and parser.stats.bytes_discarded == 128
    assert kind in parser.stats.last_error


def test_side_info_length_not_a_multiple_of_4_is_invalid():
    bad = frame_bytes(0, side=False, extra_tlvs=[(7, b"\x00" * 6)])
    frames, parser = parse(bad + frame_bytes(1))
    assert numbers(frames) == [1] and parser.stats.frames_invalid == 1
    assert "type 7 length 6 is not a multiple of 4" in parser.stats.last_error


@pytest.mark.parametrize("n_tlv, kind", [(3, "TLV type 0"), (1, "more than padding"),
                                         (1000, "claims 1000 TLVs")])
def test_lying_tlv_count_is_invalid(n_tlv, kind):
    bad = patched(frame_bytes(0), N_TLV, n_tlv)
    frames, parser = parse(bad + frame_bytes(1))
    assert numbers(frames) == [1]
    assert parser.stats.frames_invalid == 1 and parser.stats.bytes_discarded == 128
    assert kind in parser.stats.last_error


def test_duplicate_points_tlv_is_invalid():
    bad = frame_bytes(0, side=False, extra_tlvs=[(1, bytes(16))])
    frames, parser = parse(bad)
    assert frames == [] and "appears twice" in parser.stats.last_error


def test_point_count_mismatch_trusts_the_payload():
    bad = patched(frame_bytes(0), N_OBJ, 5)
    frames, parser = parse(bad + frame_bytes(1))
    assert numbers(frames) == [0, 1]
    np.testing.assert_array_equal(frames[0].points[:, :4], points_for(0, 3))
    assert parser.stats.point_count_mismatches == 1 and parser.stats.frames_ok == 2
    assert parser.stats.last_error == "frame 0: header says 5 points, the points TLV holds 3"
    assert set(parser.stats.last_error_by_kind) == {"point_count_mismatches"}


def test_points_claimed_without_a_points_tlv_is_a_mismatch():
    bad = patched(encode_frame(np.zeros((0, 4)), 4), N_OBJ, 2)
    (f,), parser = parse(bad)
    assert f.points.shape == (0, 5) and parser.stats.point_count_mismatches == 1


def test_side_info_mismatch_drops_intensity_and_noise():
    bad = frame_bytes(0, side=False, extra_tlvs=[(7, struct.pack("<4h", 100, 10, 200, 20))])
    frames, parser = parse(bad + frame_bytes(1))
    assert numbers(frames) == [0, 1]
    f = frames[0]
    assert not f.has_side_info and f.points.shape == (3, 5)
    np.testing.assert_array_equal(f.points[:, 4], np.zeros(3, np.float32))
    assert np.isnan(f.noise_db).all()
    assert parser.stats.side_info_mismatches == 1 and frames[1].has_side_info
    assert parser.stats.last_error == "frame 0: side info for 2 points, 3 points"


def test_stats_keep_the_latest_message_per_kind():
    stream = (patched(frame_bytes(0), N_OBJ, 9) + frame_bytes(1)[:50]
              + patched(frame_bytes(2), N_TLV, 1000) + frame_bytes(3))
    frames, parser = parse(stream)
    assert numbers(frames) == [0, 3]
    s = parser.stats
    assert (s.point_count_mismatches, s.frames_truncated, s.frames_invalid) == (1, 1, 1)
    assert set(s.last_error_by_kind) == {"point_count_mismatches", "frames_truncated",
                                         "frames_invalid"}
    assert s.last_error == s.last_error_by_kind["frames_invalid"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="device"):
        TIFrameParser(device="xwr1642")
    with pytest.raises(ValueError, match="max_packet_bytes"):
        TIFrameParser(max_packet_bytes=16)


# ---------------------------------------------------------------- robustness (never raise, bounded)

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000), st.lists(st.integers(1, 700), max_size=8),
       st.sampled_from(["auto", "xwr14xx", "xwr18xx"]))
def test_random_bytes_never_raise(data, chunks, device):
    parser = TIFrameParser(device=device, max_packet_bytes=256)
    feed_checked(parser, data, chunks)
    assert parser.stats.bytes_in == len(data)
    if MAGIC not in data:
        assert parser.stats.bytes_discarded == len(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=300), st.integers(0, 6), st.booleans()),
                min_size=1, max_size=8),
       st.lists(st.integers(1, 500), max_size=6))
def test_frames_mixed_with_garbage_are_all_recovered(parts, chunks):
    junk = [garbage(g) for g, _, _ in parts]
    stream = b"".join(j + frame_bytes(i, n, side) for i, (j, (_, n, side)) in
                      enumerate(zip(junk, parts)))
    parser = TIFrameParser(max_packet_bytes=512)
    frames = feed_checked(parser, stream, chunks)
    assert numbers(frames) == list(range(len(parts)))
    for i, (f, (_, n, _)) in enumerate(zip(frames, parts)):
        np.testing.assert_array_equal(f.points[:, :4], points_for(i, n))
    assert parser.stats.bytes_discarded == sum(map(len, junk))
    assert parser.stats.frames_truncated == parser.stats.frames_invalid == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 10), st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
                                     max_size=6),
       st.lists(st.integers(1, 300), max_size=6), st.integers(0, 2**32 - 1))
def test_byte_flips_only_cost_the_frames_they_hit(count, flips, chunks, seed):
    packets = [frame_bytes(seed % 1000 + i, n=(seed >> i) % 5) for i in range(count)]
    stream = bytearray(b"".join(packets))
    starts = np.cumsum([0] + [len(p) for p in packets])
    hit = set()
    for where, xor in flips:
        where %= len(stream)
        stream[where] ^= xor
        hit.add(int(np.searchsorted(starts, where, side="right")) - 1)
    frames = feed_checked(TIFrameParser(max_packet_bytes=1024), bytes(stream), chunks)
    # Every untouched frame comes out, in order; a damaged one may come out altered or not at all.
    untouched = [key(parse(p)[0][0]) for i, p in enumerate(packets) if i not in hit]
    got = iter(key(f) for f in frames)
    assert all(k in got for k in untouched)


# The two time bounds below are ~20x what the parser needs: they catch quadratic rescanning
# (which would take minutes), not speed, which bench/ measures.
def test_feed_is_fast_on_random_data_and_on_a_flood_of_magic_words():
    rng = np.random.default_rng(0)
    noise = garbage(rng.integers(0, 256, 2_000_000, dtype=np.uint8).tobytes())
    parser = TIFrameParser()
    t0 = time.perf_counter()
    for i in range(0, len(noise), 65536):
        assert parser.feed(noise[i:i + 65536]) == []
    # Every header is made of magic words: invalid, skipped 8 bytes at a time. The last 4 wait
    # for the 40 bytes of a header.
    assert parser.feed(MAGIC * 50_000) == []
    elapsed = time.perf_counter() - t0
    assert parser.stats.frames_invalid == 49_996 and parser.buffered == 32
    assert parser.stats.bytes_discarded == parser.stats.bytes_in - 32
    assert elapsed < 2.0, elapsed


def test_byte_at_a_time_through_a_long_packet_is_fast():
    big = encode_frame(points_for(0, 2000), 0, snr_db=np.zeros(2000))  # 40 kB
    parser = TIFrameParser()
    t0 = time.perf_counter()
    frames = [f for i in range(len(big)) for f in parser.feed(big[i:i + 1])]
    assert len(frames) == 1 and len(frames[0].points) == 2000
    assert time.perf_counter() - t0 < 2.0


# ---------------------------------------------------------------- axes

def test_ti_to_ros_axes_known_answer():
    ti = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [-0.5, 0.0, -1.0, 0.0, 9.0]], np.float32)
    ros = ti_to_ros_axes(ti)
    np.testing.assert_array_equal(ros, [[2.0, -1.0, 3.0, 4.0, 5.0], [0.0, 0.5, -1.0, 0.0, 9.0]])
    assert ros.dtype == np.float32 and not np.shares_memory(ros, ti)
    np.testing.assert_array_equal(ti[0], [1, 2, 3, 4, 5])  # input untouched
    assert ti_to_ros_axes(np.zeros((0, 5), np.float32)).shape == (0, 5)
    with pytest.raises(ValueError):
        ti_to_ros_axes(np.zeros((3, 2)))


# ---------------------------------------------------------------- serial

class FakeCli:
    """A CLI port that echoes each command and answers "Done", or ``answers[command]``."""

    def __init__(self, answers: dict[str, str] | None = None):
        self.answers = answers or {}
        self.written: list[bytes] = []
        self.pending = b"stale boot text Error\n"
        self.closed = False

    def reset_input_buffer(self) -> None:
        self.pending = b""

    def write(self, data: bytes) -> int:
        self.written.append(data)
        command = data.decode().strip()
        answer = self.answers.get(command, "Done")
        self.pending += f"mmwDemo:/>{command}\n{answer}\n".encode() if answer else b""
        return len(data)

    def readline(self) -> bytes:
        line, sep, self.pending = self.pending.partition(b"\n")
        return line + sep

    def close(self) -> None:
        self.closed = True


CFG = """% a comment
sensorStop

flushCfg
  % indented comment
dfeDataOutputMode 1\r
channelCfg 15 7 0
sensorStart
"""


class Factory:
    """Serial factory handing out a FakeCli and a pyserial loop:// data port."""

    def __init__(self, cli: FakeCli):
        self.cli = cli
        self.calls: list[tuple] = []
        self.data = None

    def __call__(self, port: str, baudrate: int, timeout: float):
        self.calls.append((port, baudrate, timeout))
        if port == "cli":
            return self.cli
        self.data = serial.serial_for_url("loop://", timeout=timeout)
        return self.data


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "radar.cfg"
    path.write_text(CFG)
    return path


def test_config_lines_skip_blanks_and_comments(cfg):
    assert read_config_lines(cfg) == ["sensorStop", "flushCfg", "dfeDataOutputMode 1",
                                      "channelCfg 15 7 0", "sensorStart"]


def test_serial_radar_sends_the_config_in_order_then_reads_frames(cfg):
    cli = FakeCli()
    factory = Factory(cli)
    with SerialRadar("cli", "data", cfg, timeout=0.05, serial_factory=factory) as radar:
        assert cli.written == [b"sensorStop\n", b"flushCfg\n", b"dfeDataOutputMode 1\n",
                               b"channelCfg 15 7 0\n", b"sensorStart\n"]
        # The CLI port is opened (and configured) before the data port.
        assert factory.calls == [("cli", 115200, 0.05), ("data", 921600, 0.05)]
        stream = b"junk" + stream_of(3)
        factory.data.write(stream)
        assert radar.read(10) == stream[:10]
        parser = TIFrameParser()
        assert parser.feed(stream[:10]) == []
        deadline = time.monotonic() + 5.0
        frames = list(itertools.islice(
            iter_frames(radar, parser, stop=lambda: time.monotonic() > deadline), 3))
        assert numbers(frames) == [0, 1, 2]
        assert parser.stats.bytes_discarded == 4
        assert radar.read() == b""  # nothing left: waits for the timeout, then returns
    assert cli.closed and not factory.data.is_open


def test_serial_read_waits_for_a_first_byte_then_takes_what_came_with_it():
    class SlowPort:
        """Nothing waiting until the blocking read returns one byte; 9 more arrived meanwhile."""

        def __init__(self):
            self.rest = b"0123456789"
            self.in_waiting = 0

        def read(self, size: int) -> bytes:
            out, self.rest = self.rest[:size], self.rest[size:]
            self.in_waiting = len(self.rest)
            return out

        def close(self) -> None:
            pass

    with SerialRadar(None, "data", None, serial_factory=lambda *_: SlowPort()) as radar:
        assert radar.read(6) == b"012345"
        assert radar.read() == b"6789"


def test_serial_radar_error_reply_names_the_line(cfg):
    cli = FakeCli({"channelCfg 15 7 0": "Error -1"})
    factory = Factory(cli)
    with pytest.raises(RadarConfigError, match=r"'channelCfg 15 7 0'.*Error -1"):
        SerialRadar("cli", "data", cfg, serial_factory=factory)
    assert cli.written[-1] == b"channelCfg 15 7 0\n" and len(cli.written) == 4
    assert cli.closed and factory.data is None  # the data port was never opened


def test_serial_radar_without_reply_times_out(cfg):
    cli = FakeCli({"flushCfg": ""})
    t0 = time.monotonic()
    with pytest.raises(RadarConfigError, match=r"no 'Done' within 0.1 s after config line 'flushCfg'"):
        SerialRadar("cli", "data", cfg, reply_timeout=0.1, serial_factory=Factory(cli))
    assert time.monotonic() - t0 < 1.0 and cli.closed


def test_serial_radar_without_config_opens_only_the_data_port():
    factory = Factory(FakeCli())
    with SerialRadar(None, "data", None, data_baud=460800, serial_factory=factory) as radar:
        assert factory.calls == [("data", 460800, 0.1)]
        assert radar.cli is None and not radar.eof


def test_serial_radar_on_a_real_pyserial_cli_port(cfg):
    # loop:// echoes each command, which has no "Done": the radar "does not answer".
    with pytest.raises(RadarConfigError, match="sensorStop"):
        SerialRadar("loop://", "loop://", cfg, reply_timeout=0.05)


# ---------------------------------------------------------------- file replay

def test_file_source_and_iter_frames(tmp_path):
    path = tmp_path / "radar.bin"
    path.write_bytes(b"\x00" * 10 + stream_of(4) + b"\xff" * 3 + stream_of(2, 4)
                     + frame_bytes(6)[:70])
    parser = TIFrameParser()
    with FileByteSource(path, chunk_bytes=7) as source:
        frames = list(iter_frames(source, parser))
        assert source.eof and source.read(100) == b""
    assert numbers(frames) == [0, 1, 2, 3, 4, 5]
    assert parser.stats.frames_truncated == 1
    assert parser.stats.bytes_discarded == 10 + 3 + 70
    assert parser.stats.bytes_in == path.stat().st_size


def test_file_source_reads_in_chunks_and_loops(tmp_path):
    path = tmp_path / "radar.bin"
    path.write_bytes(stream_of(2))
    source = FileByteSource(path, chunk_bytes=40, loop=True)
    assert len(stream_of(2)) == 128 and stream_of(2)[64:72] == MAGIC
    assert len(source.read()) == 40 and len(source.read(1000)) == 40
    # The parser starts 80 bytes in, inside frame 1, and then the file starts over.
    frames = list(itertools.islice(iter_frames(source, TIFrameParser()), 5))
    assert numbers(frames) == [0, 1, 0, 1, 0] and not source.eof
    source.close()
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with FileByteSource(empty, loop=True) as source:
        assert list(iter_frames(source, TIFrameParser())) == [] and source.eof


def test_iter_frames_stops_on_request():
    class Silent:
        eof = False
        reads = 0

        def read(self, max_bytes: int) -> bytes:
            Silent.reads += 1
            return b""

        def close(self) -> None:
            pass

    calls = iter([False, False, True])
    assert list(iter_frames(Silent(), TIFrameParser(), stop=lambda: next(calls))) == []
    assert Silent.reads == 2

