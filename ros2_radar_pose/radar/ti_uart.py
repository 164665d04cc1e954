"""TI mmWave SDK 3.x out-of-box demo UART output: a resynchronising parser, encoder, byte sources.

The format follows TI's "Understanding UART data output format" (mmWave SDK 3.x). All
integers are little-endian. A packet is::

    magic   8 bytes  02 01 04 03 06 05 08 07
    header  uint32 version, totalPacketLen, platform, frameNumber, timeCpuCycles,
            numDetectedObj, numTLVs, subFrameNumber        (xWR14xx has no subFrameNumber)
    TLVs    numTLVs x (uint32 type, uint32 length, length payload bytes)
    padding to a multiple of 32 bytes; totalPacketLen counts everything from the magic word

The header is 40 bytes with the magic word (36 on xWR14xx, whose platform field is 0xA1443).
TLV type 1 holds N float32 (x, y, z, velocity) points; type 7 holds N int16 (snr, noise) in
0.1 dB. Every other type (range/noise profiles, heatmaps, statistics, temperature) is skipped.

Points stay in TI axes (x right, y along boresight, z up); ``ti_to_ros_axes`` turns them into
REP-103 axes. Pacing a replay is the caller's business: nothing here sleeps except a serial read.
"""
from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ros2_radar_pose.radar.points import FIELDS, INTENSITY

MAGIC = b"\x02\x01\x04\x03\x06\x05\x08\x07"
TLV_DETECTED_POINTS = 1
TLV_SIDE_INFO = 7
SDK_VERSION = 0x03050004  # what SDK 3.5.0.4 reports; the parser accepts any version
SEGMENT_BYTES = 32  # the SDK pads each packet to a multiple of this
MAX_TLVS = 64  # the demo sends at most ~10; more means a corrupt header
DEFAULT_MAX_PACKET_BYTES = 1 << 18  # room for a range-Doppler heatmap of 512 x 128 bins

PLATFORMS: dict[str, int] = {
    "xwr14xx": 0xA1443,
    "xwr16xx": 0xA1642,
    "xwr18xx": 0xA1843,
    "xwr68xx": 0xA6843,
}
DEVICES = ("auto", *PLATFORMS)
HEADER_BYTES: dict[str, int] = {"xwr14xx": 36, "xwr16xx": 40, "xwr18xx": 40, "xwr68xx": 40}

# The header fields after the magic word, by header size: xWR14xx lacks subFrameNumber.
_LAYOUTS = {36: struct.Struct("<7I"), 40: struct.Struct("<8I")}
_TLV = struct.Struct("<2I")
_U32 = struct.Struct("<I")
_PLATFORM_OFFSET = 16  # the same in both header layouts
_ITEM_BYTES = {TLV_DETECTED_POINTS: 16, TLV_SIDE_INFO: 4}
_TENTH_DB = np.float32(0.1)


@dataclass(eq=False)
class RadarFrame:
    """One decoded packet. ``points`` (N, 5) float32 in TI axes, intensity = SNR in dB (0 without
    side info); ``noise_db`` (N,) float32 (NaN without side info)."""

    frame_number: int
    subframe: int | None  # None on xWR14xx, which has no subframes
    time_cpu_cycles: int
    platform: int
    version: int
    points: np.ndarray
    noise_db: np.ndarray
    has_side_info: bool


@dataclass
class ParserStats:
    """Running counts since the parser was made. Problem kinds are the counter names; a node can
    log ``last_error_by_kind[kind]`` the first time a counter moves and publish all as diagnostics.

    ``bytes_discarded`` counts every byte that ended up in no good frame: garbage between packets
    and the bytes of truncated and invalid packets.
    """

    frames_ok: int = 0
    bytes_in: int = 0
    bytes_discarded: int = 0
    frames_truncated: int = 0
    frames_invalid: int = 0
    point_count_mismatches: int = 0
    side_info_mismatches: int = 0
    tlvs_skipped: int = 0
    last_error: str = ""
    last_error_by_kind: dict[str, str] = field(default_factory=dict)


class _BadPacket(Exception):
    """A packet whose TLV structure does not hold together (internal: never leaves the parser)."""


class TIFrameParser:
    """Turns a byte stream, fed in chunks of any size, into RadarFrames.

    Resynchronisation rules, each of which consumes bytes so the parser never spins:

    - bytes before a magic word are garbage; without a magic word only the last 7 bytes are
      kept, in case a magic word straddles two chunks;
    - a header that cannot be right (length below the header size or above
      ``max_packet_bytes``, more TLVs than fit or than ``MAX_TLVS``) makes the packet invalid:
      its magic word is skipped and the search goes on right after it;
    - a magic word inside the claimed packet, after its own, means bytes were lost or the length
      lied: the packet counts as truncated and parsing resumes at the inner magic word (this is
      checked while the packet is still arriving, so a bogus long length costs no good frame;
      the price: a payload that happens to hold the 8 magic bytes is dropped too);
    - a complete packet whose TLVs run past its end, have a length that is not a whole number of
      items, repeat, have type 0, or leave 32 or more bytes after the last TLV (more than padding)
      is invalid; the search resumes after its magic word;
    - a good packet whose padding ends with the start of a magic word gives those bytes back, so
      a length that overstates by under 8 bytes does not eat the next packet's magic word.

    Memory stays bounded: after ``feed`` the buffer holds less than ``max_packet_bytes``.
    The results (frames and, after ``flush``, stats) do not depend on how the stream is chunked.
    """

    def __init__(self, device: str = "auto", max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES):
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if max_packet_bytes < HEADER_BYTES["xwr16xx"]:
            raise ValueError(f"max_packet_bytes must hold a header, got {max_packet_bytes}")
        self.device = device
        self.max_packet_bytes = max_packet_bytes
        self.stats = ParserStats()
        self._buf = bytearray()
        # How far past the pending packet's start the inner-magic search has already looked.
        self._scanned = 0

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a packet."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[RadarFrame]:
        """Add bytes; return the frames they complete (possibly none)."""
        self.stats.bytes_in += len(data)
        buf = self._buf
        buf += data
        frames: list[RadarFrame] = []
        pos = 0
        while True:
            start = buf.find(MAGIC, pos)
            if start < 0:
                keep_from = max(pos, len(buf) - (len(MAGIC) - 1))
                self.stats.bytes_discarded += keep_from - pos
                pos = keep_from
                self._scanned = 0
                break
            self.stats.bytes_discarded += start - pos
            pos = self._step(buf, start, frames)
            if pos is None:  # waiting for the rest of the packet at start
                pos = start
                break
        del buf[:pos]
        return frames

    def flush(self) -> list[RadarFrame]:
        """End of stream: a packet still waiting for bytes counts as truncated; all is dropped."""
        if self._buf.startswith(MAGIC):
            self._problem("frames_truncated",
                          f"stream ended {len(self._buf)} bytes into a packet")
        self.stats.bytes_discarded += len(self._buf)
        self._buf.clear()
        self._scanned = 0
        return []

    def _header_bytes(self, buf: bytearray, pos: int) -> int | None:
        if self.device != "auto":
            return HEADER_BYTES[self.device]
        if len(buf) - pos < _PLATFORM_OFFSET + 4:
            return None
        platform = _U32.unpack_from(buf, pos + _PLATFORM_OFFSET)[0]
        return HEADER_BYTES["xwr14xx" if platform == PLATFORMS["xwr14xx"] else "xwr16xx"]

    def _step(self, buf: bytearray, pos: int, frames: list[RadarFrame]) -> int | None:
        """Handle the packet whose magic word is at ``pos``: where to go on, or None to wait."""
        size = self._header_bytes(buf, pos)
        if size is None or len(buf) - pos < size:
            return None
        head = _LAYOUTS[size].unpack_from(buf, pos + len(MAGIC))
        total, number, n_tlv = head[1], head[3], head[6]
        most_tlvs = min(MAX_TLVS, (total - size) // _TLV.size)
        if not size <= total <= self.max_packet_bytes:
            return self._reject(pos, len(MAGIC), "frames_invalid", f"frame {number}: header "
                                f"claims {total} bytes (allowed {size}..{self.max_packet_bytes})")
        if n_tlv > most_tlvs:
            return self._reject(pos, len(MAGIC), "frames_invalid",
                                f"frame {number}: header claims {n_tlv} TLVs in {total} bytes")

        end = pos + total
        have = min(end, len(buf))
        inner = buf.find(MAGIC, pos + max(self._scanned, len(MAGIC)), have)
        if inner >= 0:
            return self._reject(pos, inner - pos, "frames_truncated",
                                f"frame {number}: a new packet starts at byte {inner - pos} "
                                f"of a claimed {total}")
        if have < end:
            # A magic word may straddle what has arrived, so look at the last 7 bytes again.
            self._scanned = max(len(MAGIC), have - pos - (len(MAGIC) - 1))
            return None

        packet = buf[pos:end]  # a copy: the arrays below must not pin the growing buffer
        try:
            found, skipped, tlv_end = _split_tlvs(packet, size, n_tlv)
        except _BadPacket as exc:
            return self._reject(pos, len(MAGIC), "frames_invalid", f"frame {number}: {exc}")
        frames.append(self._frame(packet, found, head))
        self.stats.frames_ok += 1
        self.stats.tlvs_skipped += skipped
        self._scanned = 0
        return end - _partial_magic(packet, tlv_end)

    def _frame(self, packet: bytearray, found: dict[int, tuple[int, int]],
               head: tuple[int, ...]) -> RadarFrame:
        version, _, platform, number, cycles, n_obj = head[:6]
        offset, length = found.get(TLV_DETECTED_POINTS, (0, 0))
        n = length // _ITEM_BYTES[TLV_DETECTED_POINTS]
        points = np.zeros((n, len(FIELDS)), dtype=np.float32)
        points[:, :INTENSITY] = np.frombuffer(packet, "<f4", 4 * n, offset).reshape(n, 4)
        noise = np.full(n, np.nan, dtype=np.float32)
        if n_obj != n:  # the payload length is checked against the packet, the count is not
            self._problem("point_count_mismatches",
                          f"frame {number}: header says {n_obj} points, the points TLV holds {n}")
        has_side = TLV_SIDE_INFO in found
        if has_side:
            offset, length = found[TLV_SIDE_INFO]
            m = length // _ITEM_BYTES[TLV_SIDE_INFO]
            if m == n:
                side = np.frombuffer(packet, "<i2", 2 * m, offset).reshape(m, 2)
                points[:, INTENSITY] = side[:, 0] * _TENTH_DB
                noise = side[:, 1] * _TENTH_DB
            else:
                has_side = False
                self._problem("side_info_mismatches",
                              f"frame {number}: side info for {m} points, {n} points")
        return RadarFrame(frame_number=number, subframe=head[7] if len(head) > 7 else None,
                          time_cpu_cycles=cycles, platform=platform, version=version,
                          points=points, noise_db=noise, has_side_info=has_side)

    def _reject(self, pos: int, n_bytes: int, kind: str, reason: str) -> int:
        self._problem(kind, reason)
        self.stats.bytes_discarded += n_bytes
        self._scanned = 0
        return pos + n_bytes

    def _problem(self, kind: str, message: str) -> None:
        setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        self.stats.last_error = message
        self.stats.last_error_by_kind[kind] = message


def _split_tlvs(packet: bytearray, start: int,
                count: int) -> tuple[dict[int, tuple[int, int]], int, int]:
    """Walk ``count`` TLVs from ``start``: {type: (payload offset, length)} for types 1 and 7,
    the number of other TLVs, and where the last TLV ends. Raises _BadPacket."""
    found: dict[int, tuple[int, int]] = {}
    skipped = 0
    offset = start
    for _ in range(count):
        if len(packet) - offset < _TLV.size:
            raise _BadPacket(f"TLV header at byte {offset} runs past the {len(packet)}-byte packet")
        kind, length = _TLV.unpack_from(packet, offset)
        offset += _TLV.size
        if length > len(packet) - offset:
            raise _BadPacket(f"TLV type {kind} of {length} bytes runs past the packet end")
        if kind in _ITEM_BYTES:
            if length % _ITEM_BYTES[kind]:
                raise _BadPacket(f"TLV type {kind} length {length} is not a multiple of "
                                 f"{_ITEM_BYTES[kind]}")
            if kind in found:
                raise _BadPacket(f"TLV type {kind} appears twice")
            found[kind] = (offset, length)
        elif kind == 0:  # no such type; zero padding read as a TLV looks like this
            raise _BadPacket("TLV type 0")
        else:
            skipped += 1
        offset += length
    if len(packet) - offset >= SEGMENT_BYTES:
        raise _BadPacket(f"{len(packet) - offset} bytes after the last TLV, more than padding")
    return found, skipped, offset


def _partial_magic(packet: bytearray, tlv_end: int) -> int:
    """How many bytes at the packet's end, all padding, could begin a magic word."""
    for k in range(len(MAGIC) - 1, 0, -1):
        if len(packet) - k >= tlv_end and packet.endswith(MAGIC[:k]):
            return k
    return 0


def ti_to_ros_axes(points: np.ndarray) -> np.ndarray:
    """TI axes (x right, y boresight, z up) to REP-103 (x forward, y left, z up).

    ``points`` (N, C >= 3), columns after z (velocity, intensity) copied unchanged; a new
    float32 (N, C) array.
    """
    ti = np.asarray(points, dtype=np.float32)
    if ti.ndim != 2 or ti.shape[1] < 3:
        raise ValueError(f"points have shape (N, C>=3), got {ti.shape}")
    ros = ti.copy()
    ros[:, 0] = ti[:, 1]
    ros[:, 1] = -ti[:, 0]
    return ros


def encode_frame(points_xyzv: np.ndarray, frame_number: int, snr_db: np.ndarray | None = None,
                 noise_db: np.ndarray | None = None, device: str = "xwr18xx",
                 time_cpu_cycles: int = 0, subframe: int = 0,
                 extra_tlvs: Iterable[tuple[int, bytes]] = (),
                 version: int = SDK_VERSION) -> bytes:
    """One packet as the out-of-box demo sends it (the parser's inverse).

    ``points_xyzv`` (N, 4) float32 in TI axes; ``snr_db``/``noise_db`` (N,) in dB, rounded to
    0.1 dB; the side-info TLV is sent only with ``snr_db`` (noise 0 if not given). As in the SDK
    a frame without points has no points TLV. ``extra_tlvs`` (type, payload) follow the point
    TLVs. Frame number and cycle count wrap at 2**32 like the radar's counters.
    """
    if device not in PLATFORMS:
        raise ValueError(f"device must be one of {tuple(PLATFORMS)}, got {device!r}")
    xyzv = np.ascontiguousarray(points_xyzv, dtype="<f4")
    if xyzv.ndim != 2 or xyzv.shape[1] != 4:
        raise ValueError(f"points_xyzv has shape (N, 4), got {xyzv.shape}")
    n = len(xyzv)
    if snr_db is None and noise_db is not None:
        raise ValueError("noise_db needs snr_db: both travel in the side-info TLV")
    tlvs: list[tuple[int, bytes]] = []
    if n:
        tlvs.append((TLV_DETECTED_POINTS, xyzv.tobytes()))
        if snr_db is not None:
            side = np.stack([_tenths_db(snr_db, n), _tenths_db(noise_db, n)], axis=1)
            tlvs.append((TLV_SIDE_INFO, side.astype("<i2").tobytes()))
    tlvs.extend((int(kind), bytes(payload)) for kind, payload in extra_tlvs)
    body = b"".join(_TLV.pack(kind, len(payload)) + payload for kind, payload in tlvs)

    size = HEADER_BYTES[device]
    total = -(-(size + len(body)) // SEGMENT_BYTES) * SEGMENT_BYTES
    head = (version, total, PLATFORMS[device], frame_number & 0xFFFFFFFF,
            time_cpu_cycles & 0xFFFFFFFF, n, len(tlvs), subframe)
    fields = head[:(size - len(MAGIC)) // 4]  # xWR14xx: no subframe
    return MAGIC + _LAYOUTS[size].pack(*fields) + body + bytes(total - size - len(body))


def _tenths_db(values: np.ndarray | None, n: int) -> np.ndarray:
    """(n,) dB values as int16 tenths of a dB, saturating; zeros for None."""
    if values is None:
        return np.zeros(n, dtype=np.int16)
    db = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(db) != n:
        raise ValueError(f"expected {n} dB values, got {len(db)}")
    return np.clip(np.rint(db * 10.0), -32768, 32767).astype(np.int16)


class ByteSource(Protocol):
    """Where radar bytes come from. ``read`` returns b"" on a timeout or, with ``eof`` set, at
    the end of a finite source."""

    eof: bool

    def read(self, max_bytes: int) -> bytes: ...

    def close(self) -> None: ...


def iter_frames(source: ByteSource, parser: TIFrameParser, max_bytes: int = 65536,
                stop: Callable[[], bool] | None = None) -> Iterator[RadarFrame]:
    """Frames from ``source`` as its bytes arrive, ending (after ``parser.flush()``) when a finite
    source runs out or ``stop()`` returns true (checked once per read; pass ``event.is_set``).

    A serial read that times out yields nothing and tries again, so ``stop`` is how a node ends a
    live stream; errors of the source (a device unplugged) propagate.
    """
    while stop is None or not stop():
        data = source.read(max_bytes)
        if data:
            yield from parser.feed(data)
        elif source.eof:
            yield from parser.flush()
            return


class FileByteSource:
    """A recorded byte stream replayed in ``chunk_bytes`` pieces, from the start again with
    ``loop`` (an empty file still ends)."""

    def __init__(self, path: str | Path, chunk_bytes: int = 4096, loop: bool = False):
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.loop = loop
        self.eof = False
        self._file = open(self.path, "rb")  # noqa: SIM115 - owned, closed by close()

    def read(self, max_bytes: int | None = None) -> bytes:
        """Up to min(max_bytes, chunk_bytes) bytes; b"" at the end of a non-looping file."""
        size = self.chunk_bytes if max_bytes is None else max(1, min(max_bytes, self.chunk_bytes))
        data = self._file.read(size)
        if not data and self.loop:
            self._file.seek(0)
            data = self._file.read(size)
        self.eof = not data
        return data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FileByteSource:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RadarConfigError(RuntimeError):
    """The radar rejected a configuration line or did not answer it."""


# (port, baudrate, timeout) -> an open pyserial-like port: write, readline, read, in_waiting,
# reset_input_buffer, close.
SerialFactory = Callable[[str, int, float], Any]


def open_serial(port: str, baudrate: int, timeout: float) -> Any:
    """pyserial's port for a device path or URL (``loop://`` in tests)."""
    import serial  # here, so the parser imports and runs where pyserial is absent

    return serial.serial_for_url(port, baudrate=baudrate, timeout=timeout)


def read_config_lines(path: str | Path) -> list[str]:
    """The commands of a mmWave .cfg file: stripped, without blank lines and '%' comments."""
    text = Path(path).read_text(encoding="ascii", errors="replace")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("%")]


class SerialRadar:
    """A radar running the out-of-box demo: configured over its CLI port, read on its data port.

    With ``config_file`` None the CLI port is left alone (the radar is already streaming).
    ``serial_factory`` opens ports (default: pyserial); tests pass fakes. A line the radar
    rejects, or does not answer with "Done" within ``reply_timeout`` seconds, raises
    RadarConfigError and closes what was opened.
    """

    eof = False  # a live stream never ends by itself

    def __init__(self, cli_port: str | None, data_port: str, config_file: str | Path | None,
                 cli_baud: int = 115200, data_baud: int = 921600, timeout: float = 0.1,
                 reply_timeout: float = 2.0, serial_factory: SerialFactory | None = None):
        factory = serial_factory or open_serial
        self.reply_timeout = reply_timeout
        self.cli: Any = None
        self.data: Any = None
        try:
            if config_file is not None:
                lines = read_config_lines(config_file)
                if cli_port is None:
                    raise ValueError("a config_file needs a cli_port to send it on")
                self.cli = factory(cli_port, cli_baud, min(timeout, reply_timeout))
                self.send_config(lines)
            self.data = factory(data_port, data_baud, timeout)
        except BaseException:
            self.close()
            raise

    def send_config(self, lines: Iterable[str]) -> list[str]:
        """Send each command and wait for its "Done"; the radar's replies, one string per line."""
        self.cli.reset_input_buffer()  # stale boot text must not answer the first command
        replies = []
        for line in lines:
            self.cli.write(f"{line}\n".encode("ascii", "replace"))
            replies.append(self._await_done(line))
        return replies

    def _await_done(self, line: str) -> str:
        deadline = time.monotonic() + self.reply_timeout
        reply: list[str] = []
        while True:
            text = self.cli.readline().decode("ascii", "replace").strip()
            if text:
                reply.append(text)
                if "Done" in text:
                    return " | ".join(reply)
                if "Error" in text or "not recognized" in text:
                    raise RadarConfigError(f"the radar rejected config line {line!r}: "
                                           f"{' | '.join(reply)}")
            if time.monotonic() >= deadline:
                raise RadarConfigError(
                    f"no 'Done' within {self.reply_timeout} s after config line {line!r} "
                    f"(reply: {' | '.join(reply) or 'nothing'}); is this the CLI port of a "
                    "radar running the out-of-box demo?")

    def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` of what the data port holds; waits ``timeout`` for a first byte."""
        port = self.data
        data = port.read(max(1, min(port.in_waiting, max_bytes)))
        if len(data) == 1 and max_bytes > 1:  # the wait is over: take what came with it
            data += port.read(min(port.in_waiting, max_bytes - 1))
        return data

    def close(self) -> None:
        for port in (self.data, self.cli):
            if port is not None:
                port.close()
        self.data = self.cli = None

    def __enter__(self) -> SerialRadar:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
