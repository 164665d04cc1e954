"""What every frame the TI TLV parser yields must satisfy, and feeding it as a serial port does:
shared by the parser's property tests (test_ti_uart.py) and its fuzzers (test_fuzz.py)."""
import itertools

import numpy as np

from ros2_radar_pose.radar.points import FIELDS, INTENSITY
from ros2_radar_pose.radar.ti_uart import TIFrameParser

U32 = 2**32 - 1


def check_frame(frame) -> None:
    """Shapes, types and the side-info invariants of one frame."""
    n = len(frame.points)
    assert isinstance(frame.points, np.ndarray) and frame.points.dtype == np.float32
    assert frame.points.shape == (n, len(FIELDS)) and frame.points.flags.c_contiguous
    assert frame.noise_db.dtype == np.float32 and frame.noise_db.shape == (n,)
    for value in (frame.frame_number, frame.time_cpu_cycles, frame.platform, frame.version):
        assert 0 <= value <= U32
    assert frame.subframe is None or 0 <= frame.subframe <= U32
    if frame.has_side_info:
        tenths = np.stack([frame.points[:, INTENSITY], frame.noise_db]).astype(np.float64) * 10
        assert np.isfinite(tenths).all()
        assert (np.abs(tenths - np.rint(tenths)) < 0.01).all()
        # int16 tenths, compared once rounded: -32768 * 0.1 in float32, times 10, is -32768.0005
        whole = np.rint(tenths)
        assert ((whole >= -32768) & (whole <= 32767)).all()
    else:
        assert (frame.points[:, INTENSITY] == 0).all() and np.isnan(frame.noise_db).all()


def feed_checked(parser: TIFrameParser, stream: bytes, chunks: list[int]) -> list:
    """Feed in the given chunk sizes (cycled), as a serial port delivers; check the buffer bound
    after every feed, the emptied buffer after the flush, and every frame."""
    frames, pos = [], 0
    for size in itertools.cycle(chunks or [len(stream) or 1]):
        if pos >= len(stream):
            break
        frames += parser.feed(stream[pos:pos + size])
        pos += size
        assert parser.buffered < parser.max_packet_bytes
    frames += parser.flush()
    assert parser.buffered == 0
    for frame in frames:
        check_frame(frame)
    return frames
