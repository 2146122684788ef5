"""Amazon Polly's `2016-06-10` API on this service: the mapping rules, pure (no HTTP, no AWS calls).

The routes (tts_api.routes.polly) parse a request with these rules into a submission, and show a task as
Polly's `SynthesisTask`. Every refusal is a `PollyError` named as Polly names it, so botocore raises the
modeled exception (`client.exceptions.TextLengthExceededException`, ...).

Rules (README "Amazon Polly"):
- Language: `LanguageCode` when given (its primary subtag: `fi-FI` is `fi`, `cmn-CN` is `cmn`), and it must
  be served (else LanguageNotSupportedException). Otherwise from `VoiceId`, in order: (1) TTS_POLLY_VOICES
  (`Suvi=fin`, names in any case); (2) a served language code in any form the API takes (`fin`, `fi`); (3) one
  of Polly's own voices (POLLY_VOICE_LANGUAGES): its language when served, else the deployment's default
  language, so unchanged code keeps working; (4) any other name in botocore's VoiceId enum: the default
  language; (5) anything else: ValidationException naming the served voices.
- OutputFormat mp3, ogg_vorbis, ogg_opus, pcm, json (speech marks); SampleRate as Polly's own sets and
  defaults (12 kHz Opus is not served).
- Text: TextType text only; Start takes up to MAX_TEXT_CHARS characters, SynthesizeSpeech up to
  POLLY_SYNC_MAX_CHARS (3,000, Polly's limit), counted on the text as sent.
- OutputS3BucketName must be this deployment's bucket; OutputS3KeyPrefix is accepted and not used (keys are
  the task's); SnsTopicArn, lexicons and engines other than `standard` are refused with Polly's exceptions.
- TaskStatus: queued → scheduled, processing → inProgress, completed/done → completed, failed → failed (with
  `TaskStatusReason` = "code: message").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tts_common.domain import TaskStatus
from tts_common.exceptions import UnsupportedLanguage
from tts_common.languages import ServedLanguages, canonical_code, language_name
from tts_common.task import Task
from tts_common.voice import AudioFormat

# What `client_request["api"]` holds on a task submitted through these routes.
API_NAME = "polly"
ENGINE = "standard"
TEXT_TYPE = "text"
# Polly's limit for SynthesizeSpeech (characters of the text as sent); Start takes MAX_TEXT_CHARS.
POLLY_SYNC_MAX_CHARS = 3000
MAX_RESULTS = 100
MAX_KEY_PREFIX_CHARS = 800

# Polly's OutputFormat -> the audio the worker writes; json (speech marks): a synthesis whose marks are kept.
AUDIO_FORMATS: dict[str, AudioFormat] = {
    "mp3": AudioFormat.MP3,
    "ogg_vorbis": AudioFormat.OGG_VORBIS,
    "ogg_opus": AudioFormat.OGG_OPUS,
    "pcm": AudioFormat.PCM,
}
MARKS_OUTPUT = "json"
OUTPUT_FORMATS = (*AUDIO_FORMATS, MARKS_OUTPUT)
# The audio a json task is spoken into (its marks are the output; the audio is not shown).
MARKS_AUDIO_FORMAT = AudioFormat.MP3
# Polly's sample rates per format, and its defaults. Opus at 12 kHz is Polly's but not SAMPLE_RATES'.
SAMPLE_RATES: dict[str, tuple[int, ...]] = {
    "mp3": (8000, 16000, 22050, 24000),
    "ogg_vorbis": (8000, 16000, 22050, 24000),
    "ogg_opus": (8000, 16000, 24000, 48000),
    "pcm": (8000, 16000),
}
DEFAULT_SAMPLE_RATES = {"mp3": 22050, "ogg_vorbis": 22050, "ogg_opus": 48000, "pcm": 16000}
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "ogg_vorbis": "audio/ogg",
    "ogg_opus": "audio/ogg",
    "pcm": "audio/pcm",
    MARKS_OUTPUT: "application/x-json-stream",
}
# The speech marks the worker writes (tts_worker.marks): sentences and words.
MARK_TYPES = ("sentence", "word")
POLLY_MARK_TYPES = ("sentence", "ssml", "viseme", "word")

TASK_STATUS: dict[TaskStatus, str] = {
    TaskStatus.QUEUED: "scheduled",
    TaskStatus.PROCESSING: "inProgress",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.DONE: "completed",
    TaskStatus.FAILED: "failed",
}
# The list filter: `completed` lists done tasks (the transient completed state shows only unfiltered).
STATUS_FILTER: dict[str, TaskStatus] = {
    "scheduled": TaskStatus.QUEUED,
    "inProgress": TaskStatus.PROCESSING,
    "completed": TaskStatus.DONE,
    "failed": TaskStatus.FAILED,
}

# Polly's own voices and their language (Polly's "Available voices" table): VoiceId rule (3).
_POLLY_VOICES_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "arb": ("Zeina",),
    "ar-AE": ("Hala", "Zayd"),
    "ca-ES": ("Arlet",),
    "cmn-CN": ("Zhiyu",),
    "cs-CZ": ("Jitka",),
    "cy-GB": ("Gwyneth",),
    "da-DK": ("Naja", "Mads", "Sofie"),
    "de-AT": ("Hannah",),
    "de-CH": ("Sabrina",),
    "de-DE": ("Marlene", "Vicki", "Hans", "Daniel"),
    "en-AU": ("Nicole", "Olivia", "Russell"),
    "en-GB": ("Amy", "Emma", "Brian", "Arthur"),
    "en-GB-WLS": ("Geraint",),
    "en-IE": ("Niamh",),
    "en-IN": ("Aditi", "Raveena", "Kajal"),
    "en-NZ": ("Aria",),
    "en-SG": ("Jasmine",),
    "en-US": (
        "Danielle",
        "Gregory",
        "Ivy",
        "Joanna",
        "Kendra",
        "Kimberly",
        "Salli",
        "Joey",
        "Justin",
        "Kevin",
        "Matthew",
        "Ruth",
        "Stephen",
        "Patrick",
    ),
    "en-ZA": ("Ayanda",),
    "es-ES": ("Conchita", "Lucia", "Enrique", "Sergio"),
    "es-MX": ("Mia", "Andres"),
    "es-US": ("Lupe", "Penelope", "Miguel", "Pedro"),
    "fi-FI": ("Suvi",),
    "fr-BE": ("Isabelle",),
    "fr-CA": ("Chantal", "Gabrielle", "Liam"),
    "fr-FR": ("Celine", "Lea", "Mathieu", "Remi"),
    "is-IS": ("Dora", "Karl"),
    "it-IT": ("Carla", "Bianca", "Giorgio", "Adriano"),
    "ja-JP": ("Mizuki", "Takumi", "Kazuha", "Tomoko"),
    "ko-KR": ("Seoyeon",),
    "nb-NO": ("Liv", "Ida"),
    "nl-BE": ("Lisa",),
    "nl-NL": ("Lotte", "Ruben", "Laura"),
    "pl-PL": ("Ewa", "Maja", "Jacek", "Jan", "Ola"),
    "pt-BR": ("Camila", "Vitoria", "Ricardo", "Thiago"),
    "pt-PT": ("Ines", "Cristiano"),
    "ro-RO": ("Carmen",),
    "ru-RU": ("Tatyana", "Maxim"),
    "sv-SE": ("Astrid", "Elin"),
    "tr-TR": ("Filiz", "Burcu"),
    "yue-CN": ("Hiujin",),
}
POLLY_VOICE_LANGUAGES: dict[str, str] = {
    voice: code for code, voices in _POLLY_VOICES_BY_LANGUAGE.items() for voice in voices
}


class PollyError(Exception):
    """A refusal as Polly answers it: the error's name (`x-amzn-ErrorType`), HTTP status and message."""

    def __init__(self, name: str, status: int, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.status = status
        self.message = message
        self.retry_after_ms = retry_after_ms


def validation_error(member: str, constraint: str) -> PollyError:
    return PollyError(
        "ValidationException",
        400,
        f"1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}",
    )


def service_failure(message: str, *, retry_after_ms: int | None = None) -> PollyError:
    return PollyError("ServiceFailureException", 500, message, retry_after_ms=retry_after_ms)


@cache
def botocore_voice_ids() -> frozenset[str]:
    """Every VoiceId botocore knows (botocore is in every runtime that has boto3)."""
    try:
        import botocore.session

        model = botocore.session.get_session().get_service_model("polly")
        return frozenset(model.shape_for("VoiceId").enum)
    except Exception:  # a runtime without botocore's data: the table above still applies
        return frozenset(POLLY_VOICE_LANGUAGES)


def language_of_code(language_code: str) -> str | None:
    """The ISO 639-3 code a Polly LanguageCode names by its primary subtag (`en-GB-WLS` is `eng`)."""
    primary = language_code.strip().split("-", 1)[0]
    return canonical_code(primary) if primary else None


def polly_language_code(code: str) -> str:
    """How DescribeVoices names one of our languages: ISO 639-1 where it exists (`fi`), else 639-3 (`swh`)."""
    import pycountry

    found = pycountry.languages.get(alpha_3=code)
    alpha_2 = getattr(found, "alpha_2", None) if found is not None else None
    return str(alpha_2) if alpha_2 else code


@dataclass(frozen=True, slots=True)
class PollyVoices:
    """The deployment's languages as Polly voices: one per served language (Id = its code) and one per
    TTS_POLLY_VOICES alias."""

    languages: ServedLanguages
    aliases: tuple[tuple[str, str], ...] = ()
    _by_name: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {name.lower(): code for name, code in self.aliases})

    def names(self) -> list[str]:
        return [*self.languages.codes, *(name for name, _ in self.aliases)]

    def language_for(self, voice_id: str, language_code: str | None) -> str:
        """The served language a request speaks in (the module's rules)."""
        voice_language = self._voice_language(voice_id)
        if language_code is None:
            return voice_language
        code = language_of_code(language_code)
        if code is None or code not in self.languages.codes:
            raise PollyError(
                "LanguageNotSupportedException",
                400,
                f"language {language_code!r} is not served here; served: {', '.join(self.languages.codes)}",
            )
        return code

    def _voice_language(self, voice_id: str) -> str:
        if voice_id.lower() in self._by_name:
            return self._by_name[voice_id.lower()]
        code = canonical_code(voice_id)
        if code is not None and code in self.languages.codes:
            return code
        polly = POLLY_VOICE_LANGUAGES.get(voice_id)
        if polly is not None:
            language = language_of_code(polly)
            return language if language in self.languages.codes else self.languages.default
        if voice_id in botocore_voice_ids():
            return self.languages.default
        raise validation_error(
            "voiceId", f"Member must be one of the voices served here: {', '.join(self.names())}"
        )

    def describe(self, *, language_code: str | None, engine: str | None) -> list[dict[str, Any]]:
        """DescribeVoices' `Voices`: ours, of one language when LanguageCode is given (none when it is not
        served), none for an engine other than standard."""
        if engine is not None and engine != ENGINE:
            return []
        wanted = None
        if language_code is not None:
            wanted = language_of_code(language_code)
            if wanted is None or wanted not in self.languages.codes:
                return []
        voices = [(code, code) for code in self.languages.codes] + list(self.aliases)
        return [_voice(name, code) for name, code in voices if wanted is None or code == wanted]


def _voice(name: str, code: str) -> dict[str, Any]:
    return {
        "Id": name,
        "Name": name,
        "LanguageCode": polly_language_code(code),
        "LanguageName": language_name(code),
        "SupportedEngines": [ENGINE],
    }


@dataclass(frozen=True, slots=True)
class PollyRequest:
    """A Start or SynthesizeSpeech request, checked: what to synthesize and what to echo back."""

    text: str
    voice_id: str
    language: str
    output_format: str
    sample_rate: int | None  # None for json (speech marks)
    mark_types: tuple[str, ...]
    language_code: str | None = None

    @property
    def audio_format(self) -> AudioFormat:
        return AUDIO_FORMATS.get(self.output_format, MARKS_AUDIO_FORMAT)

    @property
    def marks(self) -> bool:
        return self.output_format == MARKS_OUTPUT

    def client_request(self) -> dict[str, Any]:
        """What the task keeps of the request to echo it back (and what the dedupe key includes, so tasks
        that share a key echo the same). Stored on the task as `client_request`."""
        echo: dict[str, Any] = {"api": API_NAME, "OutputFormat": self.output_format, "VoiceId": self.voice_id}
        if self.sample_rate is not None:
            echo["SampleRate"] = str(self.sample_rate)
        if self.language_code is not None:
            echo["LanguageCode"] = self.language_code
        if self.mark_types:
            echo["SpeechMarkTypes"] = list(self.mark_types)
        return echo


_STRING_MEMBERS = (
    "Text",
    "VoiceId",
    "OutputFormat",
    "SampleRate",
    "LanguageCode",
    "Engine",
    "TextType",
    "OutputS3BucketName",
    "OutputS3KeyPrefix",
    "SnsTopicArn",
)
_LIST_MEMBERS = ("SpeechMarkTypes", "LexiconNames")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _member(name: str) -> str:
    return name[0].lower() + name[1:]


def _typed(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise PollyError("SerializationException", 400, "the request body must be a JSON object")
    for name in _STRING_MEMBERS:
        if name in body and body[name] is not None and not isinstance(body[name], str):
            raise validation_error(_member(name), "Member must be a string")
    for name in _LIST_MEMBERS:
        value = body.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise validation_error(_member(name), "Member must be a list of strings")
    return {k: v for k, v in body.items() if v is not None}


def parse_request(
    body: Any,
    *,
    voices: PollyVoices,
    max_chars: int,
    bucket: str | None = None,
    task: bool,
) -> PollyRequest:
    """StartSpeechSynthesisTask (`task=True`: with the S3 and SNS members) or SynthesizeSpeech."""
    fields = _typed(body)
    required = ["OutputFormat", "Text", "VoiceId"] + (["OutputS3BucketName"] if task else [])
    for name in required:
        if name not in fields:
            raise validation_error(_member(name), "Member must not be null")
    text, voice_id, output_format = fields["Text"], fields["VoiceId"], fields["OutputFormat"]
    if fields.get("TextType", TEXT_TYPE) != TEXT_TYPE:
        if fields["TextType"] == "ssml":
            raise PollyError(
                "InvalidSsmlException", 400, "SSML is not supported by this service; send TextType=text"
            )
        raise validation_error("textType", "Member must satisfy enum value set: [text]")
    engine = fields.get("Engine", ENGINE)
    if engine != ENGINE:
        raise PollyError(
            "EngineNotSupportedException", 400, f"engine {engine!r} is not served here; served: {ENGINE}"
        )
    if fields.get("LexiconNames"):
        raise PollyError(
            "LexiconNotFoundException", 404, "no lexicons are stored here; send the request without them"
        )
    if task:
        _check_output_location(fields, bucket=bucket)
    if output_format not in OUTPUT_FORMATS:
        raise validation_error(
            "outputFormat", f"Member must satisfy enum value set: [{', '.join(OUTPUT_FORMATS)}]"
        )
    mark_types = _mark_types(fields.get("SpeechMarkTypes") or [], output_format)
    sample_rate = _sample_rate(fields.get("SampleRate"), output_format)
    language_code = fields.get("LanguageCode")
    language = voices.language_for(voice_id, language_code)
    if len(text) > max_chars:
        raise PollyError(
            "TextLengthExceededException",
            400,
            f"the text has {len(text)} characters; the limit is {max_chars}"
            + ("" if task else " (StartSpeechSynthesisTask takes longer texts)"),
        )
    return PollyRequest(
        text=text,
        voice_id=voice_id,
        language=language,
        output_format=output_format,
        sample_rate=sample_rate,
        mark_types=mark_types,
        language_code=language_code,
    )


def _check_output_location(fields: Mapping[str, Any], *, bucket: str | None) -> None:
    if fields["OutputS3BucketName"] != bucket:
        raise PollyError(
            "InvalidS3BucketException",
            400,
            f"the output bucket must be this deployment's: {bucket}",
        )
    prefix = fields.get("OutputS3KeyPrefix", "")
    if len(prefix) > MAX_KEY_PREFIX_CHARS or _CONTROL.search(prefix):
        raise PollyError(
            "InvalidS3KeyException",
            400,
            f"OutputS3KeyPrefix is at most {MAX_KEY_PREFIX_CHARS} characters without control characters",
        )
    if "SnsTopicArn" in fields:
        raise PollyError(
            "InvalidSnsTopicArnException",
            400,
            "SNS notifications are not published here; poll GetSpeechSynthesisTask, or submit with "
            "callback_url on /api/v1/tts/convert for signed webhooks",
        )


def _mark_types(requested: Sequence[str], output_format: str) -> tuple[str, ...]:
    if len(requested) > len(POLLY_MARK_TYPES):
        raise validation_error("speechMarkTypes", "Member must have length less than or equal to 4")
    for mark in requested:
        if mark not in POLLY_MARK_TYPES:
            raise validation_error(
                "speechMarkTypes", f"Member must satisfy enum value set: [{', '.join(POLLY_MARK_TYPES)}]"
            )
    if output_format != MARKS_OUTPUT:
        if requested:
            raise PollyError(
                "MarksNotSupportedForFormatException",
                400,
                f"speech marks are output as json, not {output_format}",
            )
        return ()
    if not requested:
        raise validation_error("speechMarkTypes", "OutputFormat json needs at least one speech mark type")
    if "ssml" in requested:
        raise PollyError(
            "SsmlMarksNotSupportedForTextTypeException", 400, "ssml marks need SSML text, which is not served"
        )
    if "viseme" in requested:
        raise PollyError(
            "MarksNotSupportedForFormatException",
            400,
            f"viseme marks are not produced here; served: {', '.join(MARK_TYPES)}",
        )
    return tuple(t for t in MARK_TYPES if t in requested)


def _sample_rate(value: str | None, output_format: str) -> int | None:
    if output_format == MARKS_OUTPUT:
        return None
    if value is None:
        return DEFAULT_SAMPLE_RATES[output_format]
    allowed = SAMPLE_RATES[output_format]
    if not value.isdigit() or int(value) not in allowed:
        raise PollyError(
            "InvalidSampleRateException",
            400,
            f"sample rate {value!r} is not served for {output_format}; served: "
            + ", ".join(str(r) for r in allowed),
        )
    return int(value)


def unsupported_language(exc: UnsupportedLanguage) -> PollyError:
    return PollyError("LanguageNotSupportedException", 400, exc.message)


def status_filter(value: str | None) -> TaskStatus | None:
    if value is None:
        return None
    if value not in STATUS_FILTER:
        raise validation_error("status", f"Member must satisfy enum value set: [{', '.join(STATUS_FILTER)}]")
    return STATUS_FILTER[value]


def max_results(value: str | None) -> int:
    if value is None:
        return MAX_RESULTS
    if not value.isdigit() or not 1 <= int(value) <= MAX_RESULTS:
        raise validation_error("maxResults", f"Member must be between 1 and {MAX_RESULTS}")
    return int(value)


def echo_of(task: Task) -> dict[str, Any]:
    """What a task shows of its request: the Polly request it came with, else what its voice says (a task
    submitted on /api/v1/tts, seen through these routes)."""
    stored = task.client_request or {}
    if stored.get("api") == API_NAME:
        return {k: v for k, v in stored.items() if k != "api"}
    voice = task.voice
    output_format = next((p for p, f in AUDIO_FORMATS.items() if f is voice.format), str(voice.format))
    audio = task.lifecycle.audio
    rate = voice.sample_rate or (audio.sampling_rate if audio is not None else None)
    echo: dict[str, Any] = {"OutputFormat": output_format, "VoiceId": voice.language}
    if rate:
        echo["SampleRate"] = str(rate)
    return echo


def wants_marks(task: Task) -> tuple[str, ...]:
    """The speech mark types a json task asked for; () for an audio task."""
    echo = echo_of(task)
    if echo.get("OutputFormat") != MARKS_OUTPUT:
        return ()
    return tuple(echo.get("SpeechMarkTypes") or MARK_TYPES)


def status_of(task: Task, *, output_ready: bool) -> tuple[str, str | None]:
    """Polly's TaskStatus and TaskStatusReason. A task whose audio is written but whose output (a json
    task's marks) is missing has failed: the marks could not be made for its text."""
    if task.status is TaskStatus.FAILED:
        error = task.lifecycle.error
        reason = f"{error.code}: {error.message}" if error is not None else "the synthesis failed"
        return TASK_STATUS[TaskStatus.FAILED], reason
    if task.lifecycle.audio is not None and not output_ready:
        return "failed", "marks_not_available: speech marks could not be made for this text"
    return TASK_STATUS[task.status], None


def synthesis_task(task: Task, *, output_uri: str | None, output_ready: bool = True) -> dict[str, Any]:
    """Polly's `SynthesisTask` for one of our tasks. OutputUri only while there is output to fetch."""
    status, reason = status_of(task, output_ready=output_ready)
    shown: dict[str, Any] = {
        "TaskId": task.task_id,
        "TaskStatus": status,
        "CreationTime": task.submitted_at.timestamp(),
        "RequestCharacters": task.text_chars,
        "Engine": ENGINE,
        "TextType": TEXT_TYPE,
        **echo_of(task),
    }
    if reason is not None:
        shown["TaskStatusReason"] = reason
    if output_uri is not None and status == "completed":
        shown["OutputUri"] = output_uri
    return shown


def filter_marks(lines: bytes, mark_types: Iterable[str]) -> bytes:
    """The JSON lines of the given mark types only (Polly's json output for those SpeechMarkTypes)."""
    wanted = set(mark_types)
    kept = [line for line in lines.splitlines() if line.strip() and json.loads(line).get("type") in wanted]
    return b"".join(line + b"\n" for line in kept)
