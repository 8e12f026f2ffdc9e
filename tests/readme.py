"""The fenced code blocks of README.md, for the tests that run them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```(\S*)\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block: its language tag, its text and the line it starts on."""

    lang: str
    text: str
    line: int

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0].strip()


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README (or of ``text``), in order."""
    text = README.read_text() if text is None else text
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in _FENCE.finditer(text)
    ]


def block_after(marker: str, lang: str, skip: int = 0) -> str:
    """The text of the ``skip``-th block in ``lang`` after the first ``marker``."""
    text = README.read_text()
    start = text.index(marker)
    found = [b for b in blocks(text[start:]) if b.lang == lang]
    return found[skip].text
