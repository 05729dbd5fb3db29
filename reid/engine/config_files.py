"""Generic YAML config files for any pydantic schema: ``base:`` inheritance, dotted overrides,
errors that name the dotted key and the file. Shared by the training config
(:mod:`reid.engine.config`) and the study runner (:mod:`reid.studies.runner`).

Three ways to set a value, later ones winning:

1. a base file named by ``base: default.yaml`` (or ``defaults: [default.yaml]``, Hydra-style),
   resolved relative to the including file and deep-merged (mappings merge key by key, everything
   else is replaced);
2. the config file itself;
3. dotted command-line overrides ``optim.lr=0.01 model.backbone=resnet50``, whose values are
   parsed as YAML scalars (``0.01`` -> float, ``null`` -> None, ``[30,60]`` -> list).

Files and overrides are read under the YAML 1.2 core schema (:class:`ConfigLoader`), not PyYAML's
YAML 1.1 rules: ``3e-1`` is a number (1.1 needs a dot: ``3.0e-1``), ``yes``/``no``/``on``/``off``
are strings (so ``data.p=yes`` is a type error, not 1), ``010`` is ten, a date stays a string, and
a key given twice in one mapping is an error. :func:`dump_yaml` quotes every string that either
YAML version would read as something else, so a written ``config.yaml`` reads back identically.
"""

from __future__ import annotations

import difflib
import re
import types
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from reid.errors import UserError

M = TypeVar("M", bound=BaseModel)


class ConfigError(UserError, ValueError):
    """A configuration file or override is invalid. The message names the dotted key and the
    source (file path or 'command-line override')."""


_INHERIT_KEYS = ("base", "defaults")
_UNION_ORIGINS = (Union, types.UnionType)

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), in resolution order
_CORE_SCHEMA = (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+0123456789.")),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),
)


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the YAML 1.2 core schema's implicit types and no duplicate keys."""

    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice in one mapping (first on line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    return int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)  # 1.2: '010' is ten


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node).lower()
    return float(text.replace(".inf", "inf").replace(".nan", "nan"))


for _tag, _pattern, _first in _CORE_SCHEMA:
    ConfigLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)
ConfigLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
ConfigLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


class ConfigDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that also quotes strings the YAML 1.2 core schema would read as
    numbers (``'3e-1'``), on top of the YAML 1.1 ones (``'yes'``)."""


for _tag, _pattern, _first in _CORE_SCHEMA:
    ConfigDumper.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def load_yaml(text: str) -> Any:
    """Parse ``text`` under the YAML 1.2 core schema (:class:`ConfigLoader`)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def dump_yaml(data: Any) -> str:
    """YAML text of plain data, in key order, that :func:`load_yaml` reads back identically."""
    return yaml.dump(data, Dumper=ConfigDumper, sort_keys=False, allow_unicode=True)


def _read_yaml(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}); save the file as UTF-8") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: dict, update: dict) -> dict:
    """Mappings merge key by key; any other value in ``update`` replaces the one in ``base``."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_with_bases(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, dict[str, Path]]:
    """Read ``path`` and its ``base``/``defaults`` files; returns the merged dict and, for every
    dotted leaf key, the file that set it last (for error messages)."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"{path}: config inheritance cycle: {cycle}")
    raw = _read_yaml(path)
    bases: list[str] = []
    for key in _INHERIT_KEYS:
        if key in raw:
            value = raw.pop(key)
            if isinstance(value, str):
                bases.append(value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                bases.extend(value)
            else:
                raise ConfigError(f"{path}: key '{key}' must be a file name or a list of file names")
    merged: dict = {}
    sources: dict[str, Path] = {}
    for base in bases:
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        if not base_path.is_file():
            raise ConfigError(f"{path}: base config '{base}' not found (looked at {base_path})")
        base_dict, base_sources = _load_with_bases(base_path, (*chain, path))
        merged = deep_merge(merged, base_dict)
        sources.update(base_sources)
    merged = deep_merge(merged, raw)
    for key in _leaf_keys(raw):
        sources[key] = path
    return merged, sources


def _leaf_keys(d: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in d.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, dict):
            keys.extend(_leaf_keys(value, dotted + "."))
    return keys


def _model_class_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``), or None for a leaf type."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in _UNION_ORIGINS:
        for arg in get_args(annotation):
            found = _model_class_of(arg)
            if found is not None:
                return found
    return None


def _is_free_mapping(annotation: Any) -> bool:
    """``dict[...]`` (or ``dict | None``): sub-keys are free-form parameters."""
    if annotation is dict or get_origin(annotation) is dict:
        return True
    if get_origin(annotation) in _UNION_ORIGINS:
        return any(_is_free_mapping(a) for a in get_args(annotation))
    return False


def check_key(dotted: str, schema: type[BaseModel]) -> None:
    """Raise ConfigError unless ``dotted`` names a field of the schema (free-form dict fields
    accept any sub-key). The message lists the valid keys at that level and the closest match."""
    parts = dotted.split(".")
    model: type[BaseModel] | None = schema
    for depth, part in enumerate(parts):
        if model is None:
            return  # inside a free-form mapping
        fields = model.model_fields
        if part not in fields:
            here = ".".join(parts[:depth]) or "<top level>"
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f" Did you mean '{'.'.join(parts[:depth] + close)}'?" if close else ""
            raise ConfigError(
                f"unknown config key '{dotted}': '{part}' is not a key of {here} "
                f"(valid: {', '.join(fields)}).{hint}"
            )
        annotation = fields[part].annotation
        sub = _model_class_of(annotation)
        if sub is None and depth < len(parts) - 1 and not _is_free_mapping(annotation):
            raise ConfigError(f"unknown config key '{dotted}': '{'.'.join(parts[: depth + 1])}' is a value, not a section")
        model = sub


def parse_override(text: str) -> tuple[str, Any]:
    """``'optim.lr=0.01'`` -> ``('optim.lr', 0.01)``; the value is parsed as a YAML scalar/flow."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like dotted.key=value (e.g. optim.lr=0.01)")
    key, _, value_text = text.partition("=")
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(f"override '{text}': '{key}' is not a dotted key")
    try:
        value = load_yaml(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"override '{text}': the value is not valid YAML ({problem})") from None
    return key, value


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = d
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _format_validation_error(exc: ValidationError, sources: dict[str, Path], fallback: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # pydantic appends union member / tag names to loc; keep only real keys for the lookup
        dotted = ".".join(loc)
        source = None
        for n in range(len(loc), 0, -1):
            source = sources.get(".".join(loc[:n]))
            if source is not None:
                break
        where = source if source is not None else fallback
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        message = err['msg'].removeprefix('Value error, ')  # our validators' messages stand alone
        lines.append(f"{dotted}: {message}{got_text}  [{where}]")
    if len(lines) == 1:  # one problem, one line (what a command line prints after "error: ")
        return f"invalid configuration: {lines[0]}"
    return "invalid configuration:\n" + "\n".join(f"  {line}" for line in lines)


def read_config_tree(path: str | Path) -> tuple[dict, dict[str, Any]]:
    """The merged mapping of ``path`` and its ``base``/``defaults`` files, and for every dotted
    key the file that set it last (what :func:`validate_config` names in its errors)."""
    return _load_with_bases(Path(path))


def validate_config(schema: type[M], merged: dict, sources: dict[str, Any] | None = None,
                    label: str = "<defaults>") -> M:
    """``schema.model_validate(merged)``; a :class:`ConfigError` lists every problem with its
    dotted key and source file."""
    try:
        return schema.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, sources or {}, label)) from None


def merge_config(
    schema: type[BaseModel], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[dict, dict[str, Any], str]:
    """``(merged mapping, sources, label)``: ``path`` with its bases and the dotted ``overrides``
    applied (each key checked against ``schema``), not validated. ``sources`` maps every dotted
    key to the file (or ``'command-line override'``) that set it; ``label`` names the defaults'
    source (the file, or ``'<defaults>'``)."""
    merged: dict = {}
    sources: dict[str, Any] = {}
    label = "<defaults>"
    if path is not None:
        label = str(path)
        merged, sources = read_config_tree(path)
    for text in overrides:
        key, value = parse_override(text)
        check_key(key, schema)
        _set_dotted(merged, key, value)
        for sub in [key, *(f"{key}.{k}" for k in (_leaf_keys(value) if isinstance(value, dict) else []))]:
            sources[sub] = "command-line override"
    return merged, sources, label


def load_yaml_config(
    schema: type[M], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> M:
    """Read ``path`` (with its bases), apply dotted ``overrides`` (each key checked against
    ``schema`` first) and validate. Raises :class:`ConfigError` naming the key and the file."""
    merged, sources, label = merge_config(schema, path, overrides)
    return validate_config(schema, merged, sources, label)


def sources_of(prefix: str, sources: dict[str, Any], label: str) -> str:
    """The files (and/or ``command-line override``) that set ``prefix`` or any key below it,
    comma-separated in first-seen order; ``label`` when none did (a schema default)."""
    found = [str(v) for k, v in sources.items() if k == prefix or k.startswith(prefix + ".")]
    return ", ".join(dict.fromkeys(found)) or label


def model_class_of(annotation: Any) -> type[BaseModel] | None:
    """Public name of :func:`_model_class_of` (``describe_schema`` walks sections with it)."""
    return _model_class_of(annotation)


__all__ = ["ConfigError", "ConfigLoader", "ConfigDumper", "load_yaml", "dump_yaml", "deep_merge", "parse_override",
           "check_key", "read_config_tree", "validate_config", "merge_config", "load_yaml_config", "sources_of",
           "model_class_of"]
