"""Logging: structlog processors and the one pipeline that structlog and stdlib records share."""
