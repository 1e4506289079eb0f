"""Fixtures shared by the loader tests of this folder."""

from __future__ import annotations

import PIL.Image
import PIL.ImageFile
import pytest


@pytest.fixture
def count_opens(monkeypatch):
    """Counts `PIL.Image.open` calls (header reads) and `ImageFile.load` calls (pixel decodes)."""
    counts = {"open": 0, "load": 0}
    real_open, real_load = PIL.Image.open, PIL.ImageFile.ImageFile.load

    def counting_open(*args, **kwargs):
        counts["open"] += 1
        return real_open(*args, **kwargs)

    def counting_load(self, *args, **kwargs):
        counts["load"] += 1
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting_open)
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", counting_load)
    return counts
