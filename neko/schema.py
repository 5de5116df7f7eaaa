"""Settings files as pydantic schemas: the training configs (`neko.train.config`) and `neko.json`
(`neko.correct.model_dir`) are declared with `Schema`, and `describe` turns pydantic's first complaint
about a file into the one line a `NekoError` carries, naming the key.

`Schema` is strict: an unknown key is an error, and so is a loose type (the string "3" for a number,
1 for true). `fields_of` lets a plain dataclass of the library (a `GateRule`, an `ExpertAssignment`)
be a field of a schema, read from a mapping of its fields just as strictly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from pydantic import AfterValidator, BaseModel, ConfigDict, GetPydanticSchema, ValidationError, create_model
from pydantic_core import core_schema

from neko.errors import NekoError
from neko.tasks import Task, register_task

T = TypeVar("T")


class Schema(BaseModel):
    """A section of a settings file: unknown keys and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    def __init__(self, **data: Any) -> None:
        """Built in code, a schema complains as a file of it does: one `NekoError` line naming the
        key (reading a file goes through `model_validate`, whose caller names the file)."""
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise NekoError(f"{type(self).__name__}: {describe(error, type(self))}") from None

    # as pydantic's RootModel does: validation (`model_validate`, nested schemas) keeps building
    # instances without calling this `__init__`, so a file's errors still name the file
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


def fields_of(cls: type[T]) -> Any:
    """`cls`, a dataclass, as the type of a schema's field: an instance passes as it is, a mapping is
    checked as strictly as a `Schema` and becomes `cls(**mapping)`; a `NekoError` of `cls` itself (its
    `__post_init__`) becomes an error of the field. pydantic's own dataclass fields take only instances
    in strict mode."""
    hints = get_type_hints(cls)
    shape = create_model(
        cls.__name__,
        __base__=Schema,
        **{
            field.name: (hints[field.name], ... if field.default is dataclasses.MISSING else field.default)
            for field in dataclasses.fields(cls)
        },
    )

    def build(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> T:
        if isinstance(value, cls):
            return value
        checked = validate(value)
        with field_errors():
            return cls(**{name: getattr(checked, name) for name in type(checked).model_fields})

    validator = GetPydanticSchema(
        lambda _, handler: core_schema.no_info_wrap_validator_function(build, handler(shape))
    )
    return Annotated[cls, validator]


def distinct(items: list[T]) -> list[T]:
    """A validator's check that a list (the tasks of a config or a model) names each item once."""
    repeated = sorted({str(item) for item in items if items.count(item) > 1})
    if repeated:
        raise ValueError(f"lists {', '.join(repeated)} more than once")
    return items


@contextmanager
def field_errors() -> Iterator[None]:
    """Inside a validator: a `NekoError` (a task name the registry does not know, say) becomes the
    complaint about the field being validated, so that `describe` names its key."""
    try:
        yield
    except NekoError as error:
        raise ValueError(str(error)) from None


def describe(error: ValidationError, root: type[BaseModel]) -> str:
    """pydantic's first complaint about a `root` as one line naming the key: `optim.lr: must be > 0`."""
    first = error.errors(include_url=False)[0]
    location = dotted(first["loc"])
    kind = first["type"]
    context = {
        key: f"{value:g}" if isinstance(value, float) else value
        for key, value in first.get("ctx", {}).items()
    }
    if kind == "extra_forbidden":
        *section, key = first["loc"]
        known = ", ".join(sorted(_fields(_inner(root, section))))
        return f"{dotted(tuple(section)) or 'top level'}: unknown key {key!r} (known: {known})"
    message = _MESSAGES.get(kind, first["msg"]).format(**context)
    if kind in _SHOWS_VALUE:
        message += f", got {first['input']!r}"
    return f"{location}: {message}" if location else message


def dotted(location: Sequence[str | int]) -> str:
    """('data', 'train', 0, 'limit') -> data.train[0].limit; a key that is not a plain word (a
    newline, a space, a dot in it) is quoted, gate['\\n'], so that the message stays one line."""
    out = ""
    for part in location:
        if isinstance(part, int) or not _plain_key(part):
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out


def _plain_key(key: str) -> bool:
    return key.isprintable() and bool(key) and not any(c.isspace() or c in ".[]" for c in key)


_SHOWS_VALUE = {
    "int_type",
    "float_type",
    "string_type",
    "bool_type",
    "list_type",
    "dict_type",
    "literal_error",
    "enum",
}
_MESSAGES = {
    "missing": "is required",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "tuple_type": "must be a list",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "too_short": "must have at least {min_length} item(s)",
    "string_too_short": "must not be empty",
    "too_long": "must have at most {max_length} item(s)",
    "value_error": "{error}",
}


def _inner(kind: Any, location: list[str | int]) -> Any:
    """The type of the value at `location` inside a value of type `kind`."""
    for part in location:
        kind = _unwrapped(kind)
        fields = _fields(kind)
        if fields:
            kind = fields[part]
        elif get_origin(kind) in (dict, Mapping):
            kind = get_args(kind)[1]
        else:
            kind = get_args(kind)[0]
    return _unwrapped(kind)


def _unwrapped(kind: Any) -> Any:
    """`kind` without `Annotated` metadata, and the first of a union's members that is not None."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(member for member in get_args(kind) if member is not type(None))
        else:
            return kind


def _fields(kind: Any) -> dict[str, Any]:
    """Field name -> type of a schema or a dataclass; empty for anything else."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return {name: field.annotation for name, field in kind.model_fields.items()}
    if dataclasses.is_dataclass(kind):
        hints = get_type_hints(kind)
        return {field.name: hints[field.name] for field in dataclasses.fields(kind)}
    return {}


def _register_all(tasks: list[Task]) -> list[Task]:
    with field_errors():
        for task in tasks:
            register_task(task)
    return tasks


CustomTasks = Annotated[list[fields_of(Task)], AfterValidator(_register_all)]  # type: ignore[misc]
"""A schema field of the user's own tasks (a training config's and `neko.json`'s `custom_tasks`): each
checked as strictly as a schema, and registered as the file is read, before later fields name them."""
