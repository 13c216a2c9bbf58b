"""Which keys are secret, and what redaction leaves behind."""

from __future__ import annotations

import pytest

from otel_dist.scrubbing import REDACTED, Redactor, redact_path_attribute

#: A JSON Web Token's shape: {"alg":"HS256"} . {"sub":"alice"} . signature (base64url).
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl_x-y"


@pytest.mark.parametrize(
    "key",
    ["password", "db.password", "access_token", "X-Api-Key", "api_key", "Authorization", "Set-Cookie", "client_secret",
     "session_id", "private-key", "jwt", "AWS_ACCESS_KEY"],
)  # fmt: skip
def test_secret_names(key: str) -> None:
    assert Redactor().is_secret(key)


@pytest.mark.parametrize("key", ["tokens_used", "author", "passage", "user", "secretary_name", "cwd", "request_id"])
def test_names_that_only_look_secret(key: str) -> None:
    assert not Redactor().is_secret(key)


def test_extra_words_and_allowed_names() -> None:
    redactor = Redactor(extra=["ssn"], allow=["csrf_token"])
    assert redactor.is_secret("customer_ssn")
    assert not redactor.is_secret("csrf_token")
    assert redactor.is_secret("refresh_token")


def test_redaction_reaches_nested_values_and_leaves_the_rest() -> None:
    event = {"user": "ana", "password": "p", "config": {"api_key": "k", "items": [{"token": "t", "n": 1}]}}
    assert Redactor().redact_in_place(event) == {
        "user": "ana",
        "password": REDACTED,
        "config": {"api_key": REDACTED, "items": [{"token": REDACTED, "n": 1}]},
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a=1&token=abc", "a=1&token=[REDACTED]"),
        ("https://h/p?api_key=k&q=x", "https://h/p?api_key=[REDACTED]&q=x"),
        ("page=2", "page=2"),
        ("access%5Ftoken=t", "access%5Ftoken=[REDACTED]"),
        ("https://h/p", "https://h/p"),
        ("/items/1?password=&x=1", "/items/1?password=[REDACTED]&x=1"),
    ],
)
def test_query_redaction(value: str, expected: str) -> None:
    from otel_dist.scrubbing import redact_query

    assert redact_query(value, Redactor()) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'HTTP Request: GET http://h/x?token=abc&page=2 "200"',
            'HTTP Request: GET http://h/x?token=[REDACTED]&page=2 "200"',
        ),
        ("connecting with password=hunter2 now", "connecting with password=[REDACTED] now"),
        ("Authorization: Bearer eyJhbGciOi.x-y", "Authorization: Bearer [REDACTED]"),
        ("tokens_used=42 page=2", "tokens_used=42 page=2"),
        ("plain message", "plain message"),
        (f"link {JWT} expired", f"link {REDACTED} expired"),  # a JSON Web Token needs no name
        (f"GET /verify/{JWT}?next=/home", f"GET /verify/{REDACTED}?next=/home"),
        ("eyJ alone, eyJa.b.c, EYJabc.EYJdef.x", "eyJ alone, eyJa.b.c, EYJabc.EYJdef.x"),  # not token-shaped
    ],
)
def test_secrets_inside_free_text(text: str, expected: str) -> None:
    assert Redactor().redact_text(text) == expected


def test_credentials_shaped_as_tokens_are_found_in_urls_and_paths() -> None:
    assert Redactor.redact_credentials(f"https://h/verify/{JWT}/done?x=1") == f"https://h/verify/{REDACTED}/done?x=1"
    assert Redactor.redact_credentials("/items/42?q=eyJ") == "/items/42?q=eyJ"


@pytest.mark.parametrize(
    ("path", "route", "expected"),
    [
        ("/reset/abc123", "/reset/{token}", "/reset/[REDACTED]"),
        ("/u/7/keys/k1", "/u/{user_id}/keys/{api_key}", "/u/7/keys/[REDACTED]"),
        ("/items/42", "/items/{item_id}", "/items/42"),  # not a secret name
        ("/files/a/b/c.txt", "/files/{secret_path:path}", "/files/[REDACTED]"),  # the path converter spans segments
        ("/v1/reset/abc", "/v1/reset/{token}", "/v1/reset/[REDACTED]"),
        ("/other/abc", "/reset/{token}", "/reset/{token}"),  # does not fit its route: the route, with no value
        ("/health", None, "/health"),  # unmatched: no route, nothing to tell a secret by
        ("/about", "/about", "/about"),
    ],
)
def test_secret_path_parameters(path: str, route: str | None, expected: str) -> None:
    assert Redactor().redact_path(path, route) == expected


def test_path_parameters_named_in_the_setting_and_allowed_names() -> None:
    assert Redactor(path_params=("code",)).redact_path("/invites/XYZ/accept", "/invites/{code}/accept") == (
        "/invites/[REDACTED]/accept"
    )
    assert Redactor(path_params=("CODE",)).redact_path("/i/XYZ", "/i/{Code}") == "/i/[REDACTED]"
    assert Redactor(allow=("token",)).redact_path("/reset/abc", "/reset/{token}") == "/reset/abc"
    assert Redactor(extra=("otp",)).redact_path("/verify/123456", "/verify/{otp}") == "/verify/[REDACTED]"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("url.path", "/reset/abc", "/reset/[REDACTED]"),
        ("http.target", "/reset/abc?next=/home", "/reset/[REDACTED]?next=/home"),
        ("url.full", "https://api.example/reset/abc?x=1", "https://api.example/reset/[REDACTED]?x=1"),
        ("http.url", "http://127.0.0.1:8000/reset/abc", "http://127.0.0.1:8000/reset/[REDACTED]"),
    ],
)
def test_the_path_inside_span_attributes(key: str, value: str, expected: str) -> None:
    assert redact_path_attribute(key, value, "/reset/{token}", Redactor()) == expected
