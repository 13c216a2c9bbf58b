"""``python -m examples.small_api``: serve the API with uvicorn on $HOST:$PORT (default 0.0.0.0:8000)."""

from __future__ import annotations

import os

import uvicorn

if __name__ == "__main__":
    uvicorn.run(
        "examples.small_api.app:app", host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8000"))
    )
