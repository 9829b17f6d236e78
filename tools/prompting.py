"""Prompt templates: one file per task in ``prompts/``, with the variables it takes.

A template file starts with ``{# variables: a, b #}``, then has a ``## system`` and a ``## user``
section, written in Jinja2 (loops over concepts, optional parts). Undeclared or missing variables
are errors, checked when the template is loaded and when it is rendered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from jinja2 import Environment, StrictUndefined, Template, meta

from tools.errors import WhyprefError

_HEADER = re.compile(r"\{#\s*variables:\s*(.*?)\s*#\}")
_ENV = Environment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters for a prompt, with a marker when cut."""
    return text if len(text) <= limit else text[:limit] + " [...]"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    variables: frozenset[str]
    system: Template
    user: Template

    def render(self, **values: object) -> tuple[tuple[str, str], ...]:
        """(role, content) messages; every declared variable must be given, and nothing else."""
        given = set(values)
        if given != self.variables:
            missing, extra = sorted(self.variables - given), sorted(given - self.variables)
            raise WhyprefError(f"prompt {self.name}: missing {missing}, unexpected {extra}")
        return (("system", self.system.render(**values).strip()), ("user", self.user.render(**values).strip()))


@cache
def load_prompt(name: str) -> PromptTemplate:
    """Read and check ``prompts/<name>.md``."""
    source = resources.files("prompts").joinpath(f"{name}.md")
    if not source.is_file():
        raise WhyprefError(f"no prompt template prompts/{name}.md")
    text = source.read_text(encoding="utf-8")
    header = _HEADER.match(text)
    if header is None:
        raise WhyprefError(f"prompts/{name}.md: the first line must be {{# variables: ... #}}")
    declared = frozenset(v.strip() for v in header.group(1).split(",") if v.strip())
    parts = re.split(r"^## (system|user)\s*$", text[header.end() :], flags=re.MULTILINE)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    if set(sections) != {"system", "user"}:
        raise WhyprefError(f"prompts/{name}.md: needs a '## system' and a '## user' section")
    used = set().union(*(meta.find_undeclared_variables(_ENV.parse(s)) for s in sections.values()))
    if used != declared:
        raise WhyprefError(f"prompts/{name}.md: declares {sorted(declared)} but uses {sorted(used)}")
    return PromptTemplate(name, declared, _ENV.from_string(sections["system"]), _ENV.from_string(sections["user"]))
