"""The audio bucket: write audio and large input texts, look audio up, presign downloads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tts_common.domain import MarksFormat, content_disposition
from tts_common.messages import AudioInfo
from tts_common.voice import FORMATS, AudioFormat


@dataclass(frozen=True, slots=True)
class PresignedDownload:
    url: str
    expires_at: datetime


def audio_metadata(info: AudioInfo, *, task_id: str) -> dict[str, str]:
    """The audio object's metadata: what `find_audio` reads back (the fan-out join writes it too)."""
    return {
        "task-id": task_id,
        "format": str(info.format),
        "sampling-rate": str(info.sampling_rate),
        "duration-s": repr(info.duration_s),
        "device": info.device,
        **({"marks": ",".join(str(m) for m in info.marks)} if info.marks else {}),
    }


class AudioStore:
    def __init__(self, *, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket

    def put_audio(self, info: AudioInfo, body: bytes, *, task_id: str) -> None:
        """Write the audio with its facts as object metadata, so a redelivered job can report them again."""
        self._s3.put_object(
            Bucket=self._bucket,
            Key=info.audio_key,
            Body=body,
            ContentType=FORMATS[info.format].content_type,
            Metadata=audio_metadata(info, task_id=task_id),
        )

    def put_marks(self, key: str, body: bytes, *, content_type: str, task_id: str) -> None:
        """Write one marks file (speech marks or subtitles) beside the audio."""
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            Metadata={"task-id": task_id},
        )

    def exists(self, key: str) -> bool:
        """Whether an object is stored at this key (a HEAD; s3:GetObject covers it)."""
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def find_audio(self, audio_key: str) -> AudioInfo | None:
        """The facts of audio already written at this key, or None."""
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=audio_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        meta = head.get("Metadata", {})
        try:
            return AudioInfo(
                audio_key=audio_key,
                file_size=int(head["ContentLength"]),
                format=AudioFormat(meta["format"]),
                sampling_rate=int(meta["sampling-rate"]),
                duration_s=float(meta["duration-s"]),
                device=meta["device"],
                marks=tuple(MarksFormat(m) for m in meta.get("marks", "").split(",") if m),
            )
        except (KeyError, ValueError):
            return None  # written by something else: synthesize again and overwrite

    def put_text(self, key: str, text: str) -> None:
        self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=text.encode("utf-8"), ContentType="text/plain; charset=utf-8"
        )

    def get_text(self, key: str) -> str:
        body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return bytes(body).decode("utf-8")

    def get_audio(self, key: str, max_bytes: int) -> bytes | None:
        """The object's bytes, or None when it holds more than `max_bytes` (the body is then not read)."""
        obj = self._s3.get_object(Bucket=self._bucket, Key=key)
        body = obj["Body"]
        try:
            if int(obj.get("ContentLength", 0)) > max_bytes:
                return None
            data = bytes(body.read())
        finally:
            body.close()
        return data if len(data) <= max_bytes else None

    def presign_download(
        self, audio_key: str, *, filename: str, content_type: str, expires_in_s: int
    ) -> PresignedDownload:
        url = self._s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": audio_key,
                "ResponseContentDisposition": content_disposition(filename),
                "ResponseContentType": content_type,
            },
            ExpiresIn=expires_in_s,
        )
        return PresignedDownload(url=url, expires_at=datetime.now(UTC) + timedelta(seconds=expires_in_s))

    def ping(self) -> bool:
        try:
            self._s3.head_bucket(Bucket=self._bucket)
        except (ClientError, BotoCoreError):
            return False
        return True
