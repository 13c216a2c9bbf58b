"""What otel_dist.db keeps of a statement: literals out, placeholders in, bounded operation and collection names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_dist.db import MAX_STATEMENT, OPERATIONS, _describe_text, sanitize_statement


@pytest.mark.parametrize(
    ("statement", "sanitized"),
    [
        ("SELECT * FROM users WHERE name = 'ana' AND age > 30", "SELECT * FROM users WHERE name = ? AND age > ?"),
        ("SELECT 'it''s' , -1.5e3, 0xFF", "SELECT ? , ?, ?"),
        ("SELECT E'a\\'b' FROM t", "SELECT ? FROM t"),
        ("DO $body$ BEGIN PERFORM 'x'; END $body$", "DO ?"),
        ("SELECT $$secret$$", "SELECT ?"),
        ('SELECT "col 1", t2.c3 FROM "My Table" t2', 'SELECT "col 1", t2.c3 FROM "My Table" t2'),
        ("SELECT * FROM t WHERE a = %(a)s AND b = $1 AND c = :c AND d = ?", None),
        ("SELECT  a,\n\t b   FROM t", "SELECT a, b FROM t"),
        ("SELECT col1 FROM t1 LIMIT 10", "SELECT col1 FROM t1 LIMIT ?"),
    ],
)
def test_literals_are_replaced_and_placeholders_kept(statement: str, sanitized: str | None) -> None:
    assert sanitize_statement(statement) == (sanitized or statement)


def test_a_long_statement_is_cut() -> None:
    out = sanitize_statement("SELECT " + "a, " * 2000 + "b FROM t")
    assert len(out) == MAX_STATEMENT
    assert out.endswith("...")


@pytest.mark.parametrize(
    ("statement", "operation", "collection"),
    [
        ("SELECT * FROM bills WHERE id = 1", "SELECT", "bills"),
        ("select id from public.bills", "SELECT", "public.bills"),
        ('SELECT * FROM "bills"', "SELECT", "bills"),
        ("INSERT INTO bills (title) VALUES ('x')", "INSERT", "bills"),
        ("UPDATE bills SET title = 'x'", "UPDATE", "bills"),
        ("DELETE FROM bills WHERE id = 3", "DELETE", "bills"),
        ("/* app */ -- why\nSELECT 1", "SELECT", None),
        ("SELECT * FROM bills JOIN votes ON votes.bill = bills.id", "SELECT", None),  # two tables: none
        ("SELECT * FROM bills, votes", "SELECT", None),
        ("SELECT * FROM bills b JOIN bills c ON b.id = c.parent", "SELECT", "bills"),  # one table, twice
        ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH", "x"),
        ("frobnicate the database", "OTHER", None),
        ("", "OTHER", None),
    ],
)
def test_operation_and_collection(statement: str, operation: str, collection: str | None) -> None:
    assert _describe_text(statement)[:2] == (operation, collection)


@given(st.text(max_size=300))
def test_any_text_gives_a_bounded_operation_and_no_literal_quote(text: str) -> None:
    operation, collection, sanitized = _describe_text(text)
    assert operation in OPERATIONS or operation == "OTHER"
    assert collection is None or (len(collection) <= 64 and "'" not in collection and " " not in collection)
    assert len(sanitized) <= MAX_STATEMENT
