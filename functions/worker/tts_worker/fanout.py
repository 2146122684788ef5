"""Fan-out: a long text synthesized as parts by any number of workers, joined in S3 without holding it.

Plan (the parent job, on first receipt): the worker splits the text exactly as for one job (split_text, the
model's is_speakable), groups consecutive speakable pieces into parts of about TTS_PART_CHARS and sends one
PartJob per part to the parts queue. Each part carries its pieces' indices (their seeds) and positions (where
the pauses go), so a part's audio is the very stretch a single worker would have made.

Part: its pieces as raw s16le at the native rate, laid out as AudioAssembler lays them out (the pause before
every piece but the text's first), stored at parts/<task>/<k>.pcm, then its manifest (.json: piece frames,
token timings) which commits it; the ledger (tts_common.storage.plans) counts it once.

Join (a JoinJob on the jobs queue, sent by whichever part saw every part stored): WAV and PCM at the native
rate are a multipart upload whose parts are copied server-side from the part objects (UploadPartCopy; every
part but the last at least 5 MiB), the 44-byte WAV header uploaded last as part 1. Every other format or rate
replays the pieces through the same AudioAssembler into a multipart sink that keeps only its first 5 MiB
(libsndfile rewrites headers there) and one block in memory. Either way the bytes are the single-worker
synthesis's, and memory is bounded by the block sizes, not by the text.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from botocore.exceptions import ClientError

from tts_common.domain import PARTS_PREFIX, part_audio_key, part_manifest_key
from tts_common.voice import FORMATS, AudioFormat
from tts_worker.audio import _OGG_FORMATS, OGG_SERIAL, AudioAssembler, output_frames, set_ogg_serial, to_pcm16
from tts_worker.synthesizer.base import TokenTiming

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
# S3's smallest multipart part but the last (UploadPart and UploadPartCopy alike).
MIN_PART_BYTES = 5 * MiB
# The streaming sink uploads a part each time this much has gathered past its head.
SINK_BLOCK_BYTES = 8 * MiB
# Part objects are read in ranges of this size while streaming.
READ_CHUNK_BYTES = 8 * MiB
MANIFEST_VERSION = 1
# Who stored a part (its log line and manifest): WORKER_ID where the local stack sets one, else host:pid.
WORKER_NAME = os.environ.get("WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}"


# -- plan -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedPiece:
    index: int  # position in split_text(...): the seed's argument
    position: int  # position among the speakable pieces: where the pauses go
    text: str


def group_parts(pieces: Sequence[PlannedPiece], *, part_chars: int) -> list[list[PlannedPiece]]:
    """Consecutive pieces, each part at most `part_chars` characters (a piece longer than that alone); a
    last part shorter than a quarter of `part_chars` joins the one before."""
    parts: list[list[PlannedPiece]] = []
    current: list[PlannedPiece] = []
    chars = 0
    for piece in pieces:
        if current and chars + len(piece.text) > part_chars:
            parts.append(current)
            current, chars = [], 0
        current.append(piece)
        chars += len(piece.text)
    if current:
        if parts and chars < part_chars / 4:
            parts[-1].extend(current)
        else:
            parts.append(current)
    return parts


# -- a part's audio -----------------------------------------------------------------------------------------


class PartAssembler:
    """A part's pieces in any order; out, one s16le stream at the native rate laid out as AudioAssembler
    feeds its encoder: [pause if the part is not the text's start] piece [pause piece]... (AudioAssembler's
    add/complete/pieces_done/discard surface, so the core drives both alike)."""

    def __init__(self, *, total: int, native_rate: int, leading_pause: bool, pause_s: float) -> None:
        self._total = total
        self.native_rate = native_rate
        self.leading_pause = leading_pause
        self.pause_frames = round(pause_s * native_rate)
        self._silence = np.zeros(self.pause_frames, dtype=np.int16).tobytes()
        self._early: dict[int, npt.NDArray[np.int16]] = {}
        self._next = 0
        self._buffer = io.BytesIO()
        self.piece_frames: list[int] = []

    @property
    def total(self) -> int:
        return self._total

    @property
    def pieces_done(self) -> int:
        return self._next + len(self._early)

    @property
    def complete(self) -> bool:
        return self._next == self._total

    def add(self, position: int, waveform: npt.NDArray[np.floating]) -> None:
        if not (self._next <= position < self._total) or position in self._early:
            raise ValueError(f"piece {position} is out of range or was added before")
        self._early[position] = to_pcm16(waveform)
        while self._next in self._early:
            if self._next or self.leading_pause:
                self._buffer.write(self._silence)
            samples = self._early.pop(self._next)
            self._buffer.write(samples.astype("<i2", copy=False).tobytes())
            self.piece_frames.append(len(samples))
            self._next += 1

    def body(self) -> bytes:
        if not self.complete:
            raise ValueError(f"{self._total - self._next} piece(s) missing")
        return self._buffer.getvalue()

    def discard(self) -> None:
        self._early.clear()
        self._buffer = io.BytesIO()


def part_manifest(
    assembler: PartAssembler,
    *,
    part: int,
    positions: Sequence[int],
    indices: Sequence[int],
    timings: dict[int, TokenTiming],
    device: str,
) -> dict[str, Any]:
    """What the join needs of a stored part. `timings` by local position; null where a piece had none."""
    return {
        "v": MANIFEST_VERSION,
        "part": part,
        "native_rate": assembler.native_rate,
        "pause_frames": assembler.pause_frames,
        "leading_pause": assembler.leading_pause,
        "positions": list(positions),
        "indices": list(indices),
        "piece_frames": list(assembler.piece_frames),
        "bytes": 2 * (sum(assembler.piece_frames) + assembler.pause_frames * _pauses(assembler)),
        "device": device,
        "worker": WORKER_NAME,
        "timings": [
            [list(timings[j].samples), list(timings[j].sources)] if j in timings else None
            for j in range(assembler.total)
        ],
    }


def _pauses(assembler: PartAssembler) -> int:
    return assembler.total - (0 if assembler.leading_pause else 1)


@dataclass(frozen=True, slots=True)
class Layout:
    """The joined audio's shape, from the manifests alone (before a byte is read)."""

    native_frames: int
    piece_starts: tuple[int, ...]  # native frame each piece begins at in the joined audio, by position
    indices: tuple[int, ...]  # split_text index of each position
    timings: tuple[TokenTiming | None, ...]
    device: str


def layout_of(manifests: Sequence[dict[str, Any]], *, pieces_total: int) -> Layout:
    starts: list[int] = []
    indices: list[int] = []
    timings: list[TokenTiming | None] = []
    base = 0
    rates = {m["native_rate"] for m in manifests}
    if len(rates) != 1:
        raise ValueError(f"parts at different native rates: {sorted(rates)}")
    for k, m in enumerate(manifests):
        if m.get("v") != MANIFEST_VERSION or m["part"] != k:
            raise ValueError(f"manifest {k} is not part {k} in version {MANIFEST_VERSION}")
        if m["positions"] and m["positions"][0] != len(starts):
            raise ValueError(f"part {k} does not start at position {len(starts)}")
        offset = 0
        for j, frames in enumerate(m["piece_frames"]):
            if j or m["leading_pause"]:
                offset += m["pause_frames"]
            starts.append(base + offset)
            offset += frames
        if 2 * offset != m["bytes"]:
            raise ValueError(f"part {k}: its frames and its size disagree")
        indices.extend(m["indices"])
        for t in m["timings"]:
            timings.append(None if t is None else TokenTiming(samples=tuple(t[0]), sources=tuple(t[1])))
        base += offset
    if len(starts) != pieces_total or len(indices) != pieces_total:
        raise ValueError(f"the parts hold {len(starts)} pieces, the plan {pieces_total}")
    return Layout(
        native_frames=base,
        piece_starts=tuple(starts),
        indices=tuple(indices),
        timings=tuple(timings),
        device=str(manifests[0].get("device", "cpu")),
    )


# -- S3 -----------------------------------------------------------------------------------------------------


class PartStore:
    """Part objects and multipart uploads in the audio bucket."""

    def __init__(self, *, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket

    def put_part(self, task_id: str, part: int, body: bytes, manifest: dict[str, Any]) -> None:
        """The audio first; the manifest, written after it, says the part is stored."""
        self._s3.put_object(
            Bucket=self._bucket,
            Key=part_audio_key(task_id, part),
            Body=body,
            ContentType="application/octet-stream",
            Metadata={"task-id": task_id},
        )
        self._s3.put_object(
            Bucket=self._bucket,
            Key=part_manifest_key(task_id, part),
            Body=json.dumps(manifest, separators=(",", ":")).encode(),
            ContentType="application/json",
            Metadata={"task-id": task_id},
        )

    def get_manifest(self, task_id: str, part: int) -> dict[str, Any] | None:
        try:
            got = self._s3.get_object(Bucket=self._bucket, Key=part_manifest_key(task_id, part))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        manifest: dict[str, Any] = json.loads(got["Body"].read())
        return manifest

    def has_manifest(self, task_id: str, part: int) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=part_manifest_key(task_id, part))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def read(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of an object."""
        if end <= start:
            return b""
        got = self._s3.get_object(Bucket=self._bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        return bytes(got["Body"].read())

    def put_object(self, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]) -> None:
        self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata
        )

    def abort_uploads(self, key: str) -> None:
        """Multipart uploads a dead join left on `key`."""
        listed = self._s3.list_multipart_uploads(Bucket=self._bucket, Prefix=key)
        for upload in listed.get("Uploads", []):
            if upload["Key"] == key:
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload["UploadId"])

    def create_upload(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        got = self._s3.create_multipart_upload(
            Bucket=self._bucket, Key=key, ContentType=content_type, Metadata=metadata
        )
        return str(got["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        got = self._s3.upload_part(
            Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return str(got["ETag"])

    def copy_part(self, key: str, upload_id: str, number: int, source: str, start: int, end: int) -> str:
        got = self._s3.upload_part_copy(
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self._bucket, "Key": source},
            CopySourceRange=f"bytes={start}-{end - 1}",
        )
        return str(got["CopyPartResult"]["ETag"])

    def complete(self, key: str, upload_id: str, etags: dict[int, str]) -> None:
        self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
        )

    def abort(self, key: str, upload_id: str) -> None:
        self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

    def delete_parts(self, task_id: str) -> None:
        """Best effort: the bucket's lifecycle rule expires parts/ anyway."""
        prefix = f"{PARTS_PREFIX}{task_id}/"
        listed = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=prefix)
        keys = [{"Key": o["Key"]} for o in listed.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys[start : start + 1000]})


# -- the join: server-side copies (WAV and PCM at the native rate) -----------------------------------------


@dataclass(frozen=True, slots=True)
class Copy:
    key: str
    start: int
    end: int  # exclusive


@dataclass(frozen=True, slots=True)
class Upload:
    prefix: bytes
    ranges: tuple[Copy, ...]

    @property
    def size(self) -> int:
        return len(self.prefix) + sum(r.end - r.start for r in self.ranges)


def plan_join(
    sizes: Sequence[tuple[str, int]], prefix: bytes, *, minimum: int = MIN_PART_BYTES
) -> list[Copy | Upload]:
    """Segments whose concatenation is `prefix` + every object in order: every segment but the last at
    least `minimum` bytes (S3's rule), an Upload (bytes we send) under 2 x `minimum`, the rest copies."""
    out: list[Copy | Upload] = []
    buf: list[Copy] = []
    buf_len = len(prefix)
    pre = prefix

    def flush() -> None:
        nonlocal buf, buf_len, pre
        out.append(Upload(pre, tuple(buf)))
        buf, buf_len, pre = [], 0, b""

    for key, size in sizes:
        start = 0
        if buf_len >= minimum:  # a prefix at the minimum already
            flush()
        if buf_len or pre:
            take = min(size, minimum - buf_len)
            buf.append(Copy(key, 0, take))
            buf_len += take
            start = take
            if buf_len >= minimum:
                flush()
        rest = size - start
        if rest >= minimum:
            out.append(Copy(key, start, size))
        elif rest > 0:
            buf.append(Copy(key, start, size))
            buf_len += rest
        if buf_len >= minimum:
            flush()
    if buf or pre:
        flush()
    return out


def wav_header(*, data_bytes: int, rate: int) -> bytes:
    """The 44-byte header libsndfile writes for mono 16-bit PCM (RIFF, fmt, data)."""
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


def copy_join(
    store: PartStore,
    *,
    audio_key: str,
    sizes: Sequence[tuple[str, int]],
    prefix: bytes,
    content_type: str,
    metadata: dict[str, str],
    minimum: int = MIN_PART_BYTES,
) -> int:
    """`prefix` + the objects, assembled in S3; the size written. Part 1 (the header) goes last."""
    total = len(prefix) + sum(size for _, size in sizes)
    segments = plan_join(sizes, prefix, minimum=minimum)

    def gather(segment: Upload) -> bytes:
        return segment.prefix + b"".join(store.read(r.key, r.start, r.end) for r in segment.ranges)

    if total < minimum or (len(segments) == 1 and isinstance(segments[0], Upload)):
        only = segments[0]
        store.put_object(
            audio_key,
            gather(only) if isinstance(only, Upload) else store.read(only.key, only.start, only.end),
            content_type=content_type,
            metadata=metadata,
        )
        return total
    upload_id = store.create_upload(audio_key, content_type=content_type, metadata=metadata)
    etags: dict[int, str] = {}
    try:
        order = [*range(1, len(segments)), 0]  # part 1 (it holds the header) last
        for i in order:
            segment = segments[i]
            if isinstance(segment, Copy):
                etags[i + 1] = store.copy_part(
                    audio_key, upload_id, i + 1, segment.key, segment.start, segment.end
                )
            else:
                etags[i + 1] = store.upload_part(audio_key, upload_id, i + 1, gather(segment))
        store.complete(audio_key, upload_id, etags)
    except BaseException:
        _abort_quietly(store, audio_key, upload_id)
        raise
    return total


def _abort_quietly(store: PartStore, key: str, upload_id: str) -> None:
    try:
        store.abort(key, upload_id)
    except Exception:
        logger.warning("could not abort a multipart upload", extra={"key": key}, exc_info=True)


# -- the join: streaming re-encode (every other format or rate) --------------------------------------------


class MultipartSink(io.RawIOBase):
    """A seekable file for libsndfile that never holds the file: the first `head` bytes stay in memory and
    may be rewritten (WAV, FLAC and MP3 rewrite headers there at close); what lies past them goes out as
    multipart parts 2, 3, ... each time `block` bytes have gathered. `finish` uploads the head as part 1
    and completes; a file shorter than the head is one put_object."""

    def __init__(
        self,
        store: PartStore,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        head: int = MIN_PART_BYTES,
        block: int = SINK_BLOCK_BYTES,
    ) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._content_type = content_type
        self._metadata = metadata
        self._head_cap = head
        self._block = block
        self._head = bytearray()
        self._tail = bytearray()
        self._pos = 0
        self._size = 0
        self._upload_id: str | None = None
        self._etags: dict[int, str] = {}
        self.peak_buffered = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if self._pos < len(self._head):
            end = len(self._head) if size < 0 else min(len(self._head), self._pos + size)
            data = bytes(self._head[self._pos : end])
            self._pos = end
            return data
        return b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        data = bytes(data)
        n = len(data)
        if self._pos < self._size:
            if self._pos + n > len(self._head):
                raise OSError(f"a rewrite at {self._pos} reaches past the {len(self._head)}-byte head")
            self._head[self._pos : self._pos + n] = data
            self._pos += n
            return n
        if self._pos != self._size:
            raise OSError("a write past the end of the file")
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        self._tail += data
        self._pos += n
        self._size += n
        self.peak_buffered = max(self.peak_buffered, len(self._head) + len(self._tail))
        while len(self._tail) >= self._block:
            self._send(bytes(self._tail[: self._block]))
            del self._tail[: self._block]
        return n

    def _send(self, body: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._store.create_upload(
                self._key, content_type=self._content_type, metadata=self._metadata
            )
        number = len(self._etags) + 2
        self._etags[number] = self._store.upload_part(self._key, self._upload_id, number, body)

    def finish(self) -> int:
        """Write what is left and complete; the file's size."""
        if self._upload_id is None and not self._tail:
            self._store.put_object(
                self._key, bytes(self._head), content_type=self._content_type, metadata=self._metadata
            )
            return self._size
        if self._tail:
            self._send(bytes(self._tail))
            self._tail = bytearray()
        assert self._upload_id is not None
        self._etags[1] = self._store.upload_part(self._key, self._upload_id, 1, bytes(self._head))
        self._store.complete(self._key, self._upload_id, self._etags)
        return self._size

    def abort(self) -> None:
        if self._upload_id is not None:
            _abort_quietly(self._store, self._key, self._upload_id)


class OggPager(io.RawIOBase):
    """Between libsndfile and the sink for Ogg: passes whole pages on, each with the fixed stream serial
    (set_ogg_serial page by page equals the whole-buffer rewrite). Ogg is written front to back."""

    def __init__(self, sink: MultipartSink) -> None:
        super().__init__()
        self._sink = sink
        self._buf = bytearray()
        self._pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._pos + offset, io.SEEK_END: self._pos + offset}[
            whence
        ]
        if target != self._pos:
            raise OSError("an Ogg stream is written front to back")
        return self._pos

    def read(self, size: int = -1) -> bytes:
        return b""

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._buf += data
        self._pos += len(data)
        while len(self._buf) >= 27:
            segments = self._buf[26]
            if len(self._buf) < 27 + segments:
                break
            end = 27 + segments + sum(self._buf[27 : 27 + segments])
            if len(self._buf) < end:
                break
            page = bytearray(self._buf[:end])
            del self._buf[:end]
            set_ogg_serial(page, OGG_SERIAL)
            self._sink.write(page)
        return len(data)

    def flush_pages(self) -> None:
        if self._buf:
            raise ValueError("the Ogg stream ended inside a page")


class _PartReader:
    """Sequential reads of one part object, fetched in chunks."""

    def __init__(self, store: PartStore, key: str, size: int, *, chunk: int = READ_CHUNK_BYTES) -> None:
        self._store, self._key, self._size, self._chunk = store, key, size, chunk
        self._buf = b""
        self._buf_start = 0
        self._fetched = 0

    def read(self, start: int, end: int) -> bytes:
        if start < self._buf_start:
            raise ValueError("reads go forward")
        if start >= self._fetched:  # skipping what was never fetched (a pause)
            self._buf, self._buf_start, self._fetched = b"", start, start
        elif start > self._buf_start:
            self._buf = self._buf[start - self._buf_start :]
            self._buf_start = start
        while self._fetched < end:
            upto = min(self._size, max(self._fetched + self._chunk, end))
            if upto <= self._fetched:
                raise ValueError(f"a read past the end of {self._key}")
            self._buf += self._store.read(self._key, self._fetched, upto)
            self._fetched = upto
        return self._buf[: end - start]


def stream_join(
    store: PartStore,
    *,
    task_id: str,
    audio_key: str,
    manifests: Sequence[dict[str, Any]],
    audio_format: AudioFormat,
    native_rate: int,
    output_rate: int,
    pause_s: float,
    content_type: str,
    metadata: dict[str, str],
    probe: Callable[[], None] | None = None,
    head: int = MIN_PART_BYTES,
    block: int = SINK_BLOCK_BYTES,
) -> tuple[int, float]:
    """The pieces replayed through AudioAssembler into a multipart sink; (size, duration_s)."""
    total = sum(len(m["piece_frames"]) for m in manifests)
    sink = MultipartSink(
        store, audio_key, content_type=content_type, metadata=metadata, head=head, block=block
    )
    pager = OggPager(sink) if audio_format in _OGG_FORMATS else None
    try:
        assembler = AudioAssembler(
            total=total,
            native_rate=native_rate,
            audio_format=audio_format,
            output_rate=output_rate,
            pause_s=pause_s,
            target=pager if pager is not None else sink,
        )
        for piece, samples in _pieces(store, task_id, manifests):
            assembler.add_pcm16(piece, samples)
            if probe is not None:
                probe()
        if pager is not None:
            pager.flush_pages()
        size = sink.finish()
    except BaseException:
        sink.abort()
        raise
    return size, assembler.duration_s


def _pieces(
    store: PartStore, task_id: str, manifests: Sequence[dict[str, Any]]
) -> Iterator[tuple[int, npt.NDArray[np.int16]]]:
    position = 0
    for k, m in enumerate(manifests):
        reader = _PartReader(store, part_audio_key(task_id, k), int(m["bytes"]))
        offset = 0
        for j, frames in enumerate(m["piece_frames"]):
            if j or m["leading_pause"]:
                offset += m["pause_frames"]
            data = reader.read(2 * offset, 2 * (offset + frames))
            yield position, np.frombuffer(data, dtype="<i2").astype(np.int16)
            position += 1
            offset += frames


def join_audio(
    store: PartStore,
    *,
    task_id: str,
    audio_key: str,
    manifests: Sequence[dict[str, Any]],
    layout: Layout,
    audio_format: AudioFormat,
    output_rate: int,
    pause_s: float,
    metadata: dict[str, str],
    probe: Callable[[], None] | None = None,
    minimum: int = MIN_PART_BYTES,
    block: int = SINK_BLOCK_BYTES,
) -> int:
    """Write the joined audio at `audio_key`; its size. Copies for WAV/PCM at the native rate, else a
    streaming re-encode."""
    native_rate = int(manifests[0]["native_rate"])
    content_type = FORMATS[audio_format].content_type
    store.abort_uploads(audio_key)
    if output_rate == native_rate and audio_format in (AudioFormat.WAV, AudioFormat.PCM):
        prefix = (
            wav_header(data_bytes=2 * layout.native_frames, rate=native_rate)
            if audio_format is AudioFormat.WAV
            else b""
        )
        sizes = [(part_audio_key(task_id, k), int(m["bytes"])) for k, m in enumerate(manifests)]
        return copy_join(
            store,
            audio_key=audio_key,
            sizes=sizes,
            prefix=prefix,
            content_type=content_type,
            metadata=metadata,
            minimum=minimum,
        )
    size, duration_s = stream_join(
        store,
        task_id=task_id,
        audio_key=audio_key,
        manifests=manifests,
        audio_format=audio_format,
        native_rate=native_rate,
        output_rate=output_rate,
        pause_s=pause_s,
        content_type=content_type,
        metadata=metadata,
        probe=probe,
        head=minimum,
        block=max(block, minimum),
    )
    expected = output_frames(layout.native_frames, native_rate=native_rate, output_rate=output_rate)
    if abs(duration_s * output_rate - expected) > 1:
        logger.warning(
            "joined audio's length differs from the one announced",
            extra={"task_id": task_id, "frames": round(duration_s * output_rate), "expected": expected},
        )
    return size


def joined_duration_s(layout: Layout, *, native_rate: int, output_rate: int) -> float:
    return output_frames(layout.native_frames, native_rate=native_rate, output_rate=output_rate) / output_rate


# -- queues -------------------------------------------------------------------------------------------------


class QueueSender:
    """Raw bodies onto an SQS queue (part jobs, join jobs)."""

    def __init__(self, *, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self._url = queue_url

    def send(self, body: str) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=body)

    def send_many(self, bodies: Sequence[str]) -> None:
        for start in range(0, len(bodies), 10):
            chunk = bodies[start : start + 10]
            got = self._sqs.send_message_batch(
                QueueUrl=self._url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
            )
            if got.get("Failed"):
                raise RuntimeError(f"the queue refused {len(got['Failed'])} message(s)")


@dataclass(frozen=True, slots=True)
class FanoutPorts:
    """What the core needs to fan a long text out and join it (None in the core: fan-out off)."""

    ledger: Any  # tts_common.storage.plans.PlanLedger
    parts: PartStore
    parts_queue: QueueSender
    jobs_queue: QueueSender
    part_chars: int
    min_chars: int
    ttl_days: int = 30
