"""Redaction of secrets, shared by log processors and span attribute scrubbing.

A key is secret when one of the secret words appears in it as a whole word (delimited by anything that is
not a letter): ``access_token``, ``X-Api-Key`` and ``db.password`` are secret; ``tokens_used`` and
``author`` are not. Values under secret keys are replaced by :data:`REDACTED`, recursively in mappings and
sequences. ``extra`` words widen the set; ``allow`` names keys that are never redacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from functools import lru_cache
from typing import Any, Final
from urllib.parse import unquote_plus, urlsplit, urlunsplit

REDACTED: Final = "[REDACTED]"

DEFAULT_SECRET_WORDS: Final[tuple[str, ...]] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api[-_.]?key",
    "apikey",
    "authorization",
    "auth[-_.]?token",
    "cookie",
    "set[-_.]?cookie",
    "credential",
    "credentials",
    "private[-_.]?key",
    "session[-_.]?id",
    "access[-_.]?key",
    "signature",
    "sig",  # signed-URL signatures (Azure SAS); FastAPI and the HTTP semantic conventions redact it in url.query
    "jwt",
    "bearer",
)


#: Credentials recognisable by their shape wherever they are, without a key naming them: JSON Web Tokens (three
#: base64url parts, the first two encoding JSON objects, so each starts with ``eyJ``), as they turn up in URL paths
#: (``/verify/eyJ...``), redirect targets and exception messages. Case-sensitive: base64url is.
_JWT: Final = r"(?-i:\beyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)"
_JWT_PATTERN: Final = re.compile(_JWT)


class Redactor:
    """Decides which keys are secret and blanks their values."""

    def __init__(self, extra: Iterable[str] = (), allow: Iterable[str] = (), path_params: Iterable[str] = ()) -> None:
        words = [*DEFAULT_SECRET_WORDS, *(re.escape(w) for w in extra)]
        alternatives = "|".join(words)
        self._pattern = re.compile(r"(?<![a-z])(?:" + alternatives + r")(?![a-z])")
        # key=value pairs and bearer credentials inside free text (URLs in messages, library log lines)
        self._in_text = re.compile(
            r"(?i)(?P<key>[\w.\-]*(?<![a-z])(?:" + alternatives + r")(?![a-z])[\w.\-]*=)(?P<value>[^&\s\"',;]+)"
            r"|(?P<scheme>\bbearer\s+)(?P<credential>[\w.~+/=\-]+)"
            # the password in a URL's userinfo: postgres://app:s3cret@db/...
            r"|(?P<user>\b[a-z][a-z0-9+.\-]*://[^/\s:@]*:)(?P<password>[^@\s/]+)(?=@)"
            # a JSON Web Token anywhere
            r"|(?P<jwt>" + _JWT + r")"
        )
        self._allow = frozenset(a.lower() for a in allow)
        self._path_params = frozenset(p.lower() for p in path_params)
        # Keys repeat endlessly (the same log fields, the same header names), so decisions are cached.
        self.is_secret = lru_cache(maxsize=4096)(self._is_secret)
        # So do routes: one pattern per route template, or None when it has no secret parameter.
        self._route_pattern = lru_cache(maxsize=1024)(self._compile_route)

    def _is_secret(self, key: str) -> bool:
        lowered = key.lower()
        return lowered not in self._allow and self._pattern.search(lowered) is not None

    def _compile_route(self, route: str) -> re.Pattern[str] | None:
        """``/reset/{token}`` -> a pattern whose named groups are the secret parameters, or None if none is."""
        parts, secret, position = [], False, 0
        for match in _ROUTE_PARAM.finditer(route):
            name, converter = match["name"], match["converter"]
            parts.append(re.escape(route[position : match.start()]))
            segment = ".+" if converter == "path" else "[^/]+"
            if name.lower() in self._path_params or self.is_secret(name):
                parts.append(f"(?P<{name}>{segment})")
                secret = True
            else:
                parts.append(f"(?:{segment})")
            position = match.end()
        parts.append(re.escape(route[position:]))
        return re.compile("".join(parts)) if secret else None

    def redact_path(self, path: str, route: str | None) -> str:
        """``/reset/abc123`` under the route ``/reset/{token}`` -> ``/reset/[REDACTED]``.

        Path parameters are secret when their name is (``{token}``, ``{api_key}``: the words of secret keys) or
        listed in ``path_params``. A path that does not fit its route (it should) becomes the route itself,
        which holds no value at all.
        """
        if route is None or "{" not in route:
            return path
        pattern = self._route_pattern(route)
        if pattern is None:
            return path
        match = pattern.fullmatch(path)
        if match is None:
            return route
        pieces, position = [], 0
        for index in range(1, len(match.groups()) + 1):
            pieces.append(path[position : match.start(index)])
            pieces.append(REDACTED)
            position = match.end(index)
        pieces.append(path[position:])
        return "".join(pieces)

    def redact_text(self, text: str) -> str:
        """Free text with secret ``key=value`` values, bearer credentials, URL passwords and JSON Web Tokens
        replaced."""
        if "=" not in text and "earer" not in text and "@" not in text and "eyJ" not in text:
            return text  # the common case, without running the pattern
        return self._in_text.sub(_keep_the_name, text)

    @staticmethod
    def redact_credentials(text: str) -> str:
        """``text`` with credentials recognisable by their shape alone (JSON Web Tokens) replaced: for URLs and
        paths, whose other secrets are found by name (query parameters, path parameters)."""
        return _JWT_PATTERN.sub(REDACTED, text) if "eyJ" in text else text

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` with the values of secret keys replaced, at any depth."""
        if isinstance(value, Mapping):
            return {
                k: REDACTED if isinstance(k, str) and self.is_secret(k) else self.redact(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.redact(v) for v in value)
        return value

    def redact_in_place(self, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """Redact a log event dict: secret-named fields at any depth, secrets inside string values."""
        for key, value in event.items():
            if self.is_secret(key):
                event[key] = REDACTED
            elif isinstance(value, str):
                event[key] = self.redact_text(value)
            elif isinstance(value, Mapping | list | tuple):
                event[key] = self.redact(value)
        return event


def _keep_the_name(match: re.Match[str]) -> str:
    """``token=x`` -> ``token=[REDACTED]``, ``Bearer x`` -> ``Bearer [REDACTED]``, ``db://u:x@`` -> ``db://u:[REDACTED]@``."""
    prefix = match["key"] or match["scheme"] or match["user"] or ""
    return f"{prefix}{REDACTED}"


#: A path parameter of a route template: ``{name}`` or ``{name:converter}`` (Starlette, FastAPI).
_ROUTE_PARAM: Final = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<converter>[A-Za-z_][A-Za-z0-9_]*))?\}")

#: Attributes holding free text that may quote a secret (an exception message, a traceback): scanned with
#: :meth:`Redactor.redact_text` on spans, span events and log records.
TEXT_ATTRIBUTES: Final = frozenset({"exception.message", "exception.stacktrace"})

#: Span attributes that carry a query string (whole URLs included).
URL_ATTRIBUTES: Final = ("url.query", "url.full", "http.target", "http.url")


def redact_query(query: str, redactor: Redactor) -> str:
    """``a=1&token=x`` -> ``a=1&token=[REDACTED]``; anything before a ``?`` (a whole URL) is kept as is."""
    if "@" in query:
        query = redactor.redact_text(query) if "://" in query else query
    head, sep, tail = query.rpartition("?")
    params = tail if sep or "=" in tail else ""
    if not params:
        return query
    pairs = []
    for pair in params.split("&"):
        name, eq, _ = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if eq and redactor.is_secret(unquote_plus(name)) else pair)
    return f"{head}{sep}{'&'.join(pairs)}"


#: Span attributes that carry the request's path, alone or in a URL (with ``http.route``, its template).
PATH_ATTRIBUTES: Final = ("url.path", "http.target", "url.full", "http.url")


def redact_path_attribute(key: str, value: str, route: str, redactor: Redactor) -> str:
    """The path inside ``url.path``, ``http.target`` (path?query) or a whole URL with its secret parameters blanked."""
    if key == "url.path":
        return redactor.redact_path(value, route)
    if key == "http.target" or "://" not in value:
        path, sep, query = value.partition("?")
        return f"{redactor.redact_path(path, route)}{sep}{query}"
    parts = urlsplit(value)
    return urlunsplit(parts._replace(path=redactor.redact_path(parts.path, route)))
