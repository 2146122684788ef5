"""The OpenAPI schema documents every status each route can return, with the one error body."""

from __future__ import annotations

import pytest

from tts_api.app import create_app

ERROR_REF = "#/components/schemas/ErrorResponse"

EXPECTED = {
    ("get", "/"): {"200", "500"},
    ("get", "/health"): {"200", "500", "503"},
    ("post", "/api/v1/tts/convert"): {"202", "400", "401", "413", "422", "500", "503"},
    ("post", "/api/v1/tts/convert-multiple"): {"202", "400", "401", "413", "422", "500", "503"},
    ("get", "/api/v1/tts"): {"200", "400", "401", "422", "500", "503"},
    ("get", "/api/v1/tts/stats"): {"200", "401", "500", "503"},
    ("get", "/api/v1/tts/{conversion_id}"): {"200", "401", "404", "500", "503"},
    ("get", "/api/v1/tts/{conversion_id}/download"): {"200", "307", "401", "404", "409", "422", "500", "503"},
    ("get", "/api/v1/tts/{conversion_id}/marks"): {"200", "307", "401", "404", "409", "422", "500", "503"},
    ("get", "/api/v1/voices"): {"200", "500"},
}


@pytest.fixture(scope="module")
def schema():
    return create_app().openapi()


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield (method, path), operation


def test_every_route_documents_exactly_its_statuses(schema):
    documented = {key: set(op["responses"]) for key, op in _operations(schema)}
    assert documented == EXPECTED


def test_every_tts_route_asks_for_a_key_in_either_header(schema):
    schemes = schema["components"]["securitySchemes"]
    api_key = schemes["ApiKey"]
    assert (api_key["type"], api_key["in"], api_key["name"]) == ("apiKey", "header", "x-api-key")
    assert schemes["Bearer"]["type"] == "http"
    assert schemes["Bearer"]["scheme"] == "bearer"
    for (method, path), operation in _operations(schema):
        if path.startswith("/api/v1/tts"):
            assert {"ApiKey": []} in operation["security"], (method, path)
            assert {"Bearer": []} in operation["security"], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_every_error_status_uses_the_error_body(schema):
    for key, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (key == ("get", "/health") and status == "503"):
                continue
            assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}, (key, status)


def test_success_bodies_are_json_and_the_redirect_has_none(schema):
    for key, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if status == "307":
                assert "content" not in response
                assert "Location" in response["headers"]
            elif int(status) < 300:
                assert list(response["content"]) == ["application/json"], key


def test_fastapis_own_validation_model_is_gone(schema):
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "HTTPValidationError" not in str(schema["paths"])


def test_the_health_503_is_the_health_report(schema):
    response = schema["paths"]["/health"]["get"]["responses"]["503"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/HealthReport"}


def test_the_schema_names_the_served_languages_and_bounds_the_filename(api_settings):
    serving = api_settings.model_copy(update={"tts_languages": ("fin", "eng", "swh")})
    schema = create_app(settings=serving).openapi()
    for name in ("ConvertRequest", "ConvertMultipleRequest"):
        language = schema["components"]["schemas"][name]["properties"]["language"]
        assert language["examples"] == ["fin", "eng", "swh"]
        assert (
            "Served here: fin (Finnish), eng (English), swh (Swahili (individual language)); default fin."
            in language["description"]
        )
    [filename] = [
        p
        for p in schema["paths"]["/api/v1/tts/{conversion_id}/download"]["get"]["parameters"]
        if p["name"] == "filename"
    ]
    string = next(
        s for s in filename["schema"].get("anyOf", [filename["schema"]]) if s.get("type") == "string"
    )
    assert string["minLength"] == 1


def test_the_voice_fields_are_documented_with_their_ranges(schema):
    properties = schema["components"]["schemas"]["ConvertRequest"]["properties"]
    speed = next(s for s in properties["speed"]["anyOf"] if s.get("type") == "number")
    assert (speed["minimum"], speed["maximum"]) == (0.25, 4.0)
    formats = schema["components"]["schemas"]["AudioFormat"]["enum"]
    assert formats == ["wav", "flac", "ogg_opus", "ogg_vorbis", "mp3", "pcm", "aac"]
    rate = next(s for s in properties["sample_rate"]["anyOf"] if s.get("type") == "integer")
    assert rate["enum"] == [8000, 16000, 22050, 24000, 44100, 48000]


def test_the_voices_route_has_a_typed_body(schema):
    ok = schema["paths"]["/api/v1/voices"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Voices"}
    voices = schema["components"]["schemas"]["Voices"]["properties"]
    assert {"languages", "default_language", "formats", "sample_rates"} <= set(voices)
