"""Just enough of the Dockerfile and .dockerignore formats for the image tests to follow them."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    """One instruction: its keyword (upper case), its argument text and its first line."""

    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str]:
        """Arguments of the JSON (exec) form, e.g. ``CMD ["serve"]``."""
        value = json.loads(self.args)
        assert isinstance(value, list), f"line {self.line}: {self.keyword} is not in exec form"
        return [str(item) for item in value]

    def split(self) -> tuple[dict[str, str], list[str]]:
        """Leading ``--flag=value`` options and the remaining words."""
        words = shlex.split(self.args)
        flags: dict[str, str] = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        return flags, words


@dataclass
class Stage:
    """A ``FROM`` and the instructions up to the next one."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """The stage's instructions with this keyword."""
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        """The one that takes effect (CMD, ENTRYPOINT, USER, WORKDIR)."""
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """Every ``ENV`` of the stage, in order."""
        result: dict[str, str] = {}
        for item in self.all("ENV"):
            words = shlex.split(item.args)
            if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
                result[words[0]] = item.args.split(None, 1)[1] if len(words) > 1 else ""
                continue
            for word in words:
                key, _, value = word.partition("=")
                result[key] = value
        return result


@dataclass
class Dockerfile:
    """Global ARGs and stages, in order."""

    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        """The stage the image is made of."""
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        """A stage by its ``AS`` name."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def resolve(self, text: str) -> str:
        """``${ARG}`` and ``$ARG`` from the global ARG defaults."""
        return re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: self.args.get(m.group(1) or m.group(2), m.group(0)),
            text,
        )


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with continuations joined; comment lines inside them dropped."""
    lines: list[tuple[int, str]] = []
    start, parts = 0, list[str]()
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not parts):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        lines.append((start, " ".join(part for part in parts if part)))
        parts = []
    if parts:
        lines.append((start, " ".join(parts)))
    return lines


def parse(path: Path) -> Dockerfile:
    """Parse a Dockerfile."""
    result = Dockerfile(args={}, stages=[])
    for number, line in _logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.stages.append(Stage(base=result.resolve(words[-3 if name else -1]), name=name))
        elif not result.stages:
            assert keyword == "ARG", f"line {number}: {keyword} before FROM"
            key, _, value = args.partition("=")
            result.args[key] = value
        else:
            result.stages[-1].instructions.append(Instruction(keyword, args, number))
    return result


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + r"\Z")


@dataclass
class DockerIgnore:
    """The build context filter: later patterns win, ``!`` re-includes, parents count."""

    rules: list[tuple[bool, re.Pattern[str]]]

    @classmethod
    def load(cls, path: Path) -> DockerIgnore:
        """Read a .dockerignore (a missing file ignores nothing)."""
        rules = []
        text = path.read_text() if path.exists() else ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line[1:].strip() if negated else line
            pattern = pattern.strip("/")
            rules.append((negated, _pattern_regex(pattern)))
        return cls(rules)

    def ignored(self, relative: str) -> bool:
        """True when the context path (relative, with /) is left out."""
        parts = relative.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = False
        for negated, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                verdict = not negated
        return verdict
