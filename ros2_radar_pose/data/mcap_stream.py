"""The messages of an MCAP file, read as far as they go, from files that may be cut short or damaged.

rosbags and the ``mcap`` package read MCAP files whole: without the summary at the end of the
file (a recording that was killed has none) rosbags refuses the file, and both drop a chunk that
is cut short with all its messages. This reader walks the records itself so that every complete
message survives:

- With an intact summary, messages come in log-time order, chunks merged lazily as rosbag2
  and rosbags do (memory: the chunks that overlap in time).
- Without one, the file is walked record by record in file order (the order of recording),
  messages sorted by log time within each chunk.
- Damage inside a chunk (a checksum that does not match, a record that overruns the chunk,
  an unknown opcode) costs the rest of that chunk; the walk goes on with the next chunk. A file
  cut short, or damage to the record structure between chunks, costs the rest of the file.
  Either way the stream yields a :class:`Damage` item where it happened and goes on where it can.

Format: https://mcap.dev/spec (records: opcode u8, length u64, content; little-endian).
"""
from __future__ import annotations

import heapq
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

MAGIC = b"\x89MCAP0\r\n"
HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
CHUNK_INDEX, STATISTICS, DATA_END = 0x08, 0x0B, 0x0F
LAST_STANDARD_OPCODE, FIRST_PRIVATE_OPCODE = 0x0F, 0x80
FOOTER_SIZE = 1 + 8 + 20  # opcode, length, summary start, summary offset start, summary crc
MESSAGE_HEADER = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")


class McapError(ValueError):
    """The file is not an MCAP file at all (nothing can be read from it)."""


class Damage(NamedTuple):
    """Where the file is damaged and what that cost."""

    offset: int        # byte offset of the damaged record
    reason: str        # what is wrong, and what is lost because of it
    log_time: int      # log time (ns) of the last good message before it in the stream, or -1


class Message(NamedTuple):
    channel_id: int
    log_time: int      # ns
    data: bytes


@dataclass(frozen=True)
class Channel:
    id: int
    topic: str
    msgtype: str                                   # the schema's name, e.g. sensor_msgs/msg/PointCloud2
    encoding: str                                  # message encoding, "cdr" for ROS 2
    metadata: dict[str, str] = field(default_factory=dict)  # rosbag2: offered_qos_profiles, ...


class _Chunk(NamedTuple):
    start: int         # message log times, ns
    end: int
    offset: int        # of the chunk record in the file
    length: int        # of the chunk record, opcode and length included
    channel_ids: frozenset[int]  # channels with messages in the chunk (empty: not indexed)


class _Corrupt(Exception):
    """Internal: a record that cannot be parsed."""


class McapStream:
    """An MCAP file opened for reading as much as it holds.

    After construction: ``channels`` (id -> Channel), ``counts`` (channel id -> messages),
    ``start_ns``/``end_ns`` (first and last log time, None when there are no messages),
    ``indexed`` (whether the summary could be used) and ``open_problems`` (what was found wrong
    while opening: a missing summary, damage seen by the scan that replaced it).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = self.path.open("rb")
        self.size = os.fstat(self._file.fileno()).st_size
        self.channels: dict[int, Channel] = {}
        self.counts: dict[int, int] = {}
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.open_problems: list[str] = []
        self._schemas: dict[int, str] = {}  # schema id -> message type
        self._chunks: list[_Chunk] = []
        self._data_end = self.size
        try:
            self._check_header()
            try:
                self.indexed = self._read_summary()
            except (_Corrupt, struct.error, UnicodeDecodeError) as error:
                self.open_problems.append(f"the summary at the end of the file is unusable ({error}); "
                                          "the file was scanned instead")
                self.indexed = False
            if not self.indexed:
                self._scan()
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        self._file.close()

    # -- opening ------------------------------------------------------------------------------

    def _check_header(self) -> None:
        head = self._read_at(0, 8 + 9)
        if head[:8] != MAGIC:
            raise McapError("not an MCAP file (it does not start with the MCAP magic bytes)")
        if len(head) < 17 or head[8] != HEADER:
            raise McapError("the MCAP file has no header record")

    def _read_summary(self) -> bool:
        """Channels, counts, times and the chunk index from the summary; False when there is none."""
        if self.size < 8 + 9 + FOOTER_SIZE + 8:
            self.open_problems.append("the file is too short to hold a footer; it was scanned instead")
            return False
        tail = self._read_at(self.size - FOOTER_SIZE - 8, FOOTER_SIZE + 8)
        if tail[-8:] != MAGIC or tail[0] != FOOTER:
            self.open_problems.append("the file has no footer (was the recording cut short?); it was "
                                      "scanned instead")
            return False
        summary_start = _U64.unpack_from(tail, 9)[0]
        footer_offset = self.size - FOOTER_SIZE - 8
        if summary_start == 0:
            self.open_problems.append("the file has no summary; it was scanned instead")
            return False
        if not 8 < summary_start <= footer_offset:
            raise _Corrupt(f"summary offset {summary_start} is outside the file")
        summary = self._read_at(summary_start, footer_offset - summary_start)
        statistics = None
        for opcode, content in _records(summary, summary_start):
            if opcode == SCHEMA:
                self._add_schema(content)
            elif opcode == CHANNEL:
                self._add_channel(content)
            elif opcode == CHUNK_INDEX:
                start, end, offset, length = struct.unpack_from("<QQQQ", content)
                if offset + length > summary_start:
                    raise _Corrupt(f"a chunk index points beyond the data (byte {offset})")
                indexes, _ = _read_map(content, 32, "<HQ")
                self._chunks.append(_Chunk(start, end, offset, length, frozenset(i for i, _ in indexes)))
            elif opcode == STATISTICS:
                statistics = content
        if statistics is None or (not self._chunks and _U64.unpack_from(statistics)[0]):
            self.open_problems.append("the summary has no statistics or chunk index; the file was scanned")
            self._chunks.clear()
            return False
        count, start, end = struct.unpack_from("<Q", statistics)[0], *struct.unpack_from("<QQ", statistics, 26)
        counts, _ = _read_map(statistics, 42, "<HQ")
        self.counts = dict(counts)
        if count:
            self.start_ns, self.end_ns = start, end
        self._chunks.sort()
        self._data_end = summary_start
        return True

    def _scan(self) -> None:
        """Channels, counts and times by walking the whole file (no summary to read them from)."""
        self.channels.clear()
        self._schemas.clear()
        self._chunks.clear()
        for item in self._walk(None):
            if isinstance(item, Damage):
                self.open_problems.append(f"byte {item.offset}: {item.reason}")
                continue
            self.counts[item.channel_id] = self.counts.get(item.channel_id, 0) + 1
            self.start_ns = item.log_time if self.start_ns is None else min(self.start_ns, item.log_time)
            self.end_ns = item.log_time if self.end_ns is None else max(self.end_ns, item.log_time)

    def _add_schema(self, content: bytes) -> None:
        schema_id = _U16.unpack_from(content)[0]
        self._schemas[schema_id] = _read_string(content, 2)[0]

    def _add_channel(self, content: bytes) -> None:
        channel_id, schema_id = struct.unpack_from("<HH", content)
        topic, cursor = _read_string(content, 4)
        encoding, cursor = _read_string(content, cursor)
        pairs, _ = _read_map(content, cursor, None)
        self.channels.setdefault(channel_id, Channel(channel_id, topic, self._schemas.get(schema_id, ""), encoding,
                                                     dict(pairs)))

    # -- messages -----------------------------------------------------------------------------

    def messages(self, channel_ids: set[int] | None = None) -> Iterator[Message | Damage]:
        """The messages of ``channel_ids`` (all when None), with Damage items where the file is damaged."""
        if self.indexed:
            return self._merged(channel_ids)
        return self._walk(channel_ids)

    def _merged(self, channel_ids: set[int] | None) -> Iterator[Message | Damage]:
        sources = [self._chunk_source(number, chunk, channel_ids) for number, chunk in enumerate(self._chunks)
                   if channel_ids is None or not chunk.channel_ids or chunk.channel_ids & channel_ids]
        # Each source first yields a placeholder at its chunk's start time, so merging reads a chunk
        # only when the merged stream reaches that time.
        for _, _, _, item in heapq.merge(*sources):
            if item is not None:
                yield item

    def _chunk_source(self, number: int, chunk: _Chunk, channel_ids: set[int] | None):
        yield chunk.start, number, -1, None
        record = self._read_at(chunk.offset, chunk.length)
        messages, damage = [], None
        if len(record) < chunk.length or record[0] != CHUNK:
            damage = "the chunk index points at no chunk record"
        else:
            damage = self._chunk_records(memoryview(record)[9:], channel_ids, messages, complete=True)
        messages.sort(key=lambda message: message.log_time)
        for index, message in enumerate(messages):
            yield message.log_time, number, index, message
        if damage is not None:
            last = messages[-1].log_time if messages else chunk.start
            yield last, number, len(messages), Damage(chunk.offset, damage, messages[-1].log_time if messages else -1)

    def _walk(self, channel_ids: set[int] | None) -> Iterator[Message | Damage]:
        """Top-level records in file order; the messages of each chunk sorted by log time."""
        offset, last_time = 8, -1
        while offset < self._data_end:
            head = self._read_at(offset, 9)
            if len(head) < 9:
                if self._read_at(offset, 8) == MAGIC and offset + 8 == self.size:
                    return  # the closing magic of a file without footer record: nothing lost
                yield Damage(offset, "the file ends inside a record header; anything after it is lost", last_time)
                return
            opcode, length = head[0], _U64.unpack_from(head, 1)[0]
            if opcode == 0 or LAST_STANDARD_OPCODE < opcode < FIRST_PRIVATE_OPCODE:
                yield Damage(offset, f"unknown record opcode 0x{opcode:02x}; the rest of the file cannot be "
                             "read", last_time)
                return
            available = self.size - offset - 9
            if opcode in (FOOTER, DATA_END):
                return  # the data section is complete
            if length > available:
                if opcode != CHUNK:
                    yield Damage(offset, f"the file ends inside a record (it declares {length} bytes, "
                                 f"{available} are there); anything after it is lost", last_time)
                    return
                messages: list[Message] = []
                content = memoryview(self._read_at(offset + 9, available))
                reason = self._chunk_records(content, channel_ids, messages, complete=False)
                for message in sorted(messages, key=lambda message: message.log_time):
                    last_time = message.log_time
                    yield message
                detail = "" if reason is None or "cut short" in reason else f"; {reason}"
                yield Damage(offset, f"the file ends at byte {self.size}, inside this chunk ({available} of its "
                             f"{length} bytes are there{detail}); the messages after the last complete one are "
                             "lost", last_time)
                return
            if opcode in (SCHEMA, CHANNEL, MESSAGE, CHUNK):
                messages = []
                reason = self._top_level_record(opcode, memoryview(self._read_at(offset + 9, length)),
                                                channel_ids, messages)
                for message in sorted(messages, key=lambda message: message.log_time):
                    last_time = message.log_time
                    yield message
                if reason is not None:
                    yield Damage(offset, reason, last_time)
            offset += 9 + length
        if self._data_end == self.size:
            yield Damage(offset, "the file ends without MCAP data-end record or footer (was the recording "
                         "cut short?); messages recorded after this point are missing", last_time)

    def _top_level_record(self, opcode: int, content: memoryview, channel_ids: set[int] | None,
                          out: list[Message]) -> str | None:
        """Read one complete record outside the summary; None, or what is wrong with it."""
        try:
            if opcode == SCHEMA:
                self._add_schema(content)
            elif opcode == CHANNEL:
                self._add_channel(content)
            elif opcode == MESSAGE:
                self._add_message(content, channel_ids, out)
            else:
                reason = self._chunk_records(content, channel_ids, out, complete=True)
                return None if reason is None else f"damaged chunk: {reason}"
        except (_Corrupt, struct.error, UnicodeDecodeError) as error:
            return f"damaged record ({error}); it is skipped"
        return None

    def _chunk_records(self, content: memoryview, channel_ids: set[int] | None, out: list[Message],
                       complete: bool) -> str | None:
        """Append the chunk's messages to ``out``; None, or what is wrong with the chunk and what it cost.

        ``content``: the chunk record's content, which is cut short when ``complete`` is False.
        """
        try:
            uncompressed_size, crc = struct.unpack_from("<QI", content, 16)
            compression, cursor = _read_string(content, 28)
            size = _U64.unpack_from(content, cursor)[0]
        except (struct.error, UnicodeDecodeError, _Corrupt):
            return "the chunk header is cut short; the chunk's messages are lost"
        records = content[cursor + 8:cursor + 8 + size]
        if compression:
            if len(records) < size:
                return f"a {compression} compressed chunk cut short cannot be read; its messages are lost"
            try:
                records = memoryview(_decompress(compression, records, uncompressed_size))
            except Exception as error:  # a damaged compressed stream raises whatever the codec raises
                return f"the chunk does not decompress ({error}); its messages are lost"
        elif complete and len(records) != size:
            return "the chunk's records overrun the chunk; its messages are lost"
        if complete and crc and zlib.crc32(records) != crc:
            return "the chunk's checksum does not match its data; its messages are dropped"
        cursor = 0
        while cursor < len(records):
            if cursor + 9 > len(records):
                return "a record header is cut short"
            opcode, length = records[cursor], _U64.unpack_from(records, cursor + 1)[0]
            if opcode == 0 or LAST_STANDARD_OPCODE < opcode < FIRST_PRIVATE_OPCODE:
                return f"unknown record opcode 0x{opcode:02x} inside the chunk; the rest of the chunk is lost"
            end = cursor + 9 + length
            if end > len(records):
                return ("a record is cut short" if not complete else
                        "a record overruns the chunk; the rest of the chunk is lost")
            body = records[cursor + 9:end]
            try:
                if opcode == MESSAGE:
                    self._add_message(body, channel_ids, out)
                elif opcode == SCHEMA:
                    self._add_schema(body)
                elif opcode == CHANNEL:
                    self._add_channel(body)
            except (_Corrupt, struct.error, UnicodeDecodeError) as error:
                return f"a damaged record inside the chunk ({error}); the rest of the chunk is lost"
            cursor = end
        return None

    @staticmethod
    def _add_message(body: memoryview, channel_ids: set[int] | None, out: list[Message]) -> None:
        if len(body) < MESSAGE_HEADER.size:
            raise _Corrupt(f"a message record of {len(body)} bytes")
        channel_id, _, log_time, _ = MESSAGE_HEADER.unpack_from(body)
        if channel_ids is None or channel_id in channel_ids:
            out.append(Message(channel_id, log_time, bytes(body[MESSAGE_HEADER.size:])))

    def _read_at(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)


def _records(buffer: bytes, base: int) -> Iterator[tuple[int, memoryview]]:
    """(opcode, content) of consecutive records in ``buffer`` (which starts at file offset ``base``)."""
    view, cursor = memoryview(buffer), 0
    while cursor < len(view):
        if cursor + 9 > len(view):
            raise _Corrupt(f"a record header at byte {base + cursor} is cut short")
        opcode, length = view[cursor], _U64.unpack_from(view, cursor + 1)[0]
        if opcode == FOOTER:
            return
        end = cursor + 9 + length
        if opcode == 0 or end > len(view):
            raise _Corrupt(f"a damaged record at byte {base + cursor}")
        yield opcode, view[cursor + 9:end]
        cursor = end


def _read_string(buffer, cursor: int) -> tuple[str, int]:
    size = _U32.unpack_from(buffer, cursor)[0]
    end = cursor + 4 + size
    if end > len(buffer):
        raise _Corrupt("a string overruns its record")
    return bytes(buffer[cursor + 4:end]).decode(), end


def _read_map(buffer, cursor: int, fmt: str | None) -> tuple[list[tuple], int]:
    """A map<K, V> (u32 byte length, then entries): string pairs when ``fmt`` is None, else fixed."""
    size = _U32.unpack_from(buffer, cursor)[0]
    cursor += 4
    end = cursor + size
    if end > len(buffer):
        raise _Corrupt("a map overruns its record")
    pairs = []
    if fmt is not None:
        entry = struct.Struct(fmt)
        pairs = [entry.unpack_from(buffer, at) for at in range(cursor, end - entry.size + 1, entry.size)]
        return pairs, end
    while cursor < end:
        key, cursor = _read_string(buffer, cursor)
        value, cursor = _read_string(buffer, cursor)
        pairs.append((key, value))
    return pairs, end


def _decompress(compression: str, data: memoryview, size: int) -> bytes:
    if compression == "zstd":
        try:
            from compression import zstd  # Python 3.14
        except ImportError:
            from backports import zstd  # what rosbags uses before 3.14
        raw = zstd.decompress(bytes(data))
    elif compression == "lz4":
        from lz4.frame import decompress  # a rosbags dependency

        raw = decompress(bytes(data))
    else:
        raise _Corrupt(f"unknown chunk compression {compression!r}")
    if len(raw) != size:
        raise _Corrupt(f"the chunk decompresses to {len(raw)} bytes, not {size}")
    return raw
