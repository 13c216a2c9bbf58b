"""The civic platform's tables, shared by the API and the scrapers."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
bills = sa.Table(
    "bills",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("jurisdiction", sa.String(20), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("source", sa.String(20), nullable=False, server_default="api"),
)
#: The jurisdictions and bill types the platform knows: bounded, so they can label business metrics.
JURISDICTIONS = ("federal", "on", "qc", "bc", "ab")
BILL_TYPES = ("government", "private", "senate")
