"""The audio bucket: write audio and large input texts, look audio up, presign downloads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tts_common.domain import content_disposition
from tts_common.messages import AudioInfo
from tts_common.voice import FORMATS, AudioFormat


@dataclass(frozen=True, slots=True)
class PresignedDownload:
    url: str
    expires_at: datetime


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
            Metadata={
                "task-id": task_id,
                "format": str(info.format),
                "sampling-rate": str(info.sampling_rate),
                "duration-s": repr(info.duration_s),
                "device": info.device,
            },
        )

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
