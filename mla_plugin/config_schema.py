"""The schema check the config checks share: a section against its documented defaults
(the YAML that is their one home), where a typo or a wrong kind is an error naming the key.
Plain OmegaConf, no MMF import: used by :mod:`mla_plugin.config_validation` (the plugin's
sections) and :mod:`mla_plugin.mmf_config` (MMF's)."""

import functools
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue


class ConfigError(ValueError):
    """A config section has an unknown key, a value of the wrong kind, or no value."""


def _kind(value: Any) -> str:
    for kind, types in (
        ("bool", bool),
        ("number", (int, float)),
        ("string", str),
        ("list", (list, tuple)),
        ("mapping", Mapping),
    ):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def _free(default: Any) -> bool:
    return default is None or (isinstance(default, str) and (default == "???" or "${" in default))


def check_section(
    path: str, section: Mapping, defaults: Mapping, open_keys: Iterable[str] = ()
) -> None:
    """Raise :class:`ConfigError` for a key of ``section`` absent from ``defaults`` or a
    value whose kind differs from its default's; nested mappings are checked too, except
    the keys in ``open_keys`` (free-form, like ``encoders``)."""
    for key, value in section.items():
        where = f"{path}.{key}"
        if key not in defaults:
            raise ConfigError(
                f"unknown config key {where}; valid keys of {path}: "
                f"{', '.join(sorted(map(str, defaults)))}"
            )
        default = defaults[key]
        if key in open_keys or _free(default) or value is None:
            continue
        if _kind(value) != _kind(default):
            raise ConfigError(
                f"config key {where} = {value!r} is a {_kind(value)}; expected a "
                f"{_kind(default)}, like its default {default!r}"
            )
        if _kind(default) == "mapping":
            check_section(where, value, default)


def resolved(path: str, node) -> Mapping:
    """The section as plain Python with interpolations resolved; a clear error for a
    mandatory value left unset."""
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except (MissingMandatoryValue, InterpolationToMissingValueError) as e:
        raise ConfigError(
            f"config key {path}.{e.full_key.split('.')[-1]} has no value (???): set it "
            f"in the experiment config or on the command line"
        ) from None


def defaults_of(yaml_path: str, path: str) -> Mapping:
    """The section at dotted ``path`` of a default YAML, uninterpolated."""
    node = OmegaConf.select(OmegaConf.load(yaml_path), path)
    if node is None:
        raise ConfigError(f"{yaml_path} has no section {path}")
    return OmegaConf.to_container(node, resolve=False)


# ------------------------------------------------------------ declared ranges
# A model's or dataset's YAML declares each numeric switch's range in the trailing comment
# of the key's line, the comment starting with it (docs/reliability.md "Declared ranges"):
#     hgm_alpha_const: 0.1  # range: (0, inf); alpha when hgm_alpha is const
#     fps: 1                # range: real (0, inf); a real although the default is an int
#     limit: null           # range: int [1, inf); null = all
#     fusion: entropy       # choices: entropy | fixed | mean
# Brackets are inclusive, parentheses exclusive; a key is an integer when its default is
# (``int``/``real`` before the interval override that); a range on a list or a mapping
# bounds each of its numbers.  The lines are read as text (no YAML library keeps comments).

_ANNOTATION = re.compile(r"^(range|choices)\s*:\s*(.*)$")
_RANGE = re.compile(
    r"^(?:(int|real)\s+)?([\[(])\s*(-?inf|[-+0-9.eE]+)\s*,\s*(-?inf|[-+0-9.eE]+)\s*([\])])$"
)
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w-]*)\s*:(\s.*|)$")


@dataclass(frozen=True)
class Declared:
    """One key's declared range or choices, from line ``line`` of ``file``."""

    key: str  # dotted, from the file's root (e.g. model_config.mla.hgm_alpha_const)
    file: str
    line: int
    text: str  # as written, e.g. "(0, inf)"
    low: float = -math.inf
    high: float = math.inf
    low_closed: bool = False
    high_closed: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()

    def admits(self, value: Any) -> bool:
        if self.choices:
            return str(value) in self.choices
        if not _is_number(value) or (self.integer and not isinstance(value, int)):
            return False
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def expected(self) -> str:
        if self.choices:
            return f"one of {' | '.join(self.choices)}"
        return f"{'an integer' if self.integer else 'a number'} in {self.text}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comment(rest: str) -> str | None:
    """The comment of a YAML line's value part (after ``key:``): from the first ``#``
    that follows a blank outside quotes."""
    quote = None
    for i, ch in enumerate(rest):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1].isspace()):
            return rest[i + 1 :].strip()
    return None


def _parse_bound(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a number, inf or -inf") from None


def _declared(key, file, line, kind, spec, default) -> Declared:
    where = f"{file}, line {line} ({key})"
    if kind == "choices":
        choices = tuple(c.strip() for c in spec.split("|"))
        if len(choices) < 2 or not all(choices):
            raise ConfigError(f"{where}: '# choices: {spec}' must list values as a | b | c")
        return Declared(key, file, line, spec, choices=choices)
    match = _RANGE.match(spec)
    if match is None:
        raise ConfigError(
            f"{where}: '# range: {spec}' is not an interval like [0, 1), (0, inf) or int [1, inf)"
        )
    word, left, lo, hi, right = match.groups()
    low, high = _parse_bound(lo, where), _parse_bound(hi, where)
    if low > high or (math.isinf(low) and left == "[") or (math.isinf(high) and right == "]"):
        raise ConfigError(f"{where}: '# range: {spec}' is empty or closed at infinity")
    integer = word == "int" if word or not _is_number(default) else isinstance(default, int)
    text = spec[len(word) :].strip() if word else spec
    return Declared(key, file, line, text, low, high, left == "[", right == "]", integer)


def _lookup(tree: Any, key: str) -> Any:
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


@functools.cache
def _declared_in(path: str, mtime: float) -> dict[str, Declared]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    defaults = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    found: dict[str, Declared] = {}
    for number, line in enumerate(lines, 1):
        match = _KEY_LINE.match(line)
        if match is None:
            continue  # blank, comment, list item or continuation
        indent, name, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([k for _, k in stack] + [name])
        stack.append((indent, name))
        annotation = _ANNOTATION.match(_comment(rest) or "")
        if annotation:
            kind, spec = annotation.group(1), annotation.group(2).split(";")[0].strip()
            found[key] = _declared(key, path, number, kind, spec, _lookup(defaults, key))
    return found


def declared_ranges(yaml_path: str) -> dict[str, Declared]:
    """``{dotted key: Declared}`` of every ``# range:`` / ``# choices:`` annotation in a
    model's or dataset's default YAML (read once per version of the file)."""
    return _declared_in(os.path.abspath(yaml_path), os.path.getmtime(yaml_path))


def numeric_keys(yaml_path: str) -> list[str]:
    """The dotted keys of a default YAML whose default is a number (not a bool)."""
    tree = OmegaConf.to_container(OmegaConf.load(yaml_path), resolve=False)
    out = []

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, Mapping):
                walk(v, f"{prefix}{k}.")
            elif _is_number(v):
                out.append(f"{prefix}{k}")

    walk(tree, "")
    return out


def check_declared(path: str, section: Mapping, yaml_path: str) -> None:
    """Raise :class:`ConfigError` for a value of ``section`` (the config at dotted
    ``path``) outside the range or choices its YAML declares; ``null`` passes, a list or
    mapping has each number checked."""
    prefix = path + "."
    for key, declared in declared_ranges(yaml_path).items():
        if not key.startswith(prefix):
            continue
        value = _lookup(section, key[len(prefix) :])
        if isinstance(value, Mapping):
            values = list(value.values())
        else:
            values = list(value) if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is not None and not declared.admits(item):
                shown = " is" if item is value else f" holds {item!r}, which is"
                raise ConfigError(
                    f"config key {key} = {value!r}{shown} outside its declared "
                    f"{'choices' if declared.choices else 'range'}: expected "
                    f"{declared.expected()} ({_shown_path(declared.file)}, line "
                    f"{declared.line})"
                )


def _shown_path(path: str) -> str:
    """``path`` relative to the checkout (mla_plugin/configs/...) when it is inside."""
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return path if rel.startswith("..") else rel
