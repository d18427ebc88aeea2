"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    for base in (_REPO.parent / "shared" / "data", _REPO.parent.parent / "shared" / "data"):
        if base.is_dir():
            return base
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder with the real STEM test images (read in place, never copied: some are GPL)."""
    path = _find_shared_data()
    if path is None:
        pytest.skip("../shared/data is not present on this machine")
    return path
