"""Which keys are secret, and what redaction leaves behind."""

from __future__ import annotations

import pytest

from otel_dist.scrubbing import REDACTED, Redactor


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
