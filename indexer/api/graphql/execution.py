"""A leaner GraphQL executor for Strawberry schemas: plain data fields skip the resolver chain.

graphql-core executes every field the same way: it builds a `GraphQLResolveInfo`, calls the
field's resolver (for a Strawberry field without a resolver, a wrapper that reads the
attribute), checks twice whether the result is awaitable and completes the value through the
nullable, list, leaf, abstract and object branches. Over a page of 100 vehicles that is about
700 fields, and that per-field cost was most of the Identity API's CPU time.

`LeanExecutor` is Strawberry's own executor with one change, in `execute_fields`: a field
that Strawberry marks as basic (no resolver, no field extension, no permission: its value is
the source's attribute as the schema's `default_resolver` reads it, without an `Info`) whose
type is a scalar or enum, an object type, or a list of an object type (object types without
`is_type_of`) is read and completed directly. The value it gives is the one graphql-core
gives: a leaf goes through its type's own `coerce_output_value`, an object through the
executor's own `collect_subfields` and `execute_collected_subfields` (so fragments, aliases,
`@skip`/`@include`, `@defer` and `__typename` stay graphql-core's), and errors through its
`handle_field_error` with the same path, so nulls propagate as they would.

A leaf field whose resolver is a plain function of its root and of scalar or enum arguments
(sync; no `info`, `self` or `parent` parameter; no field extension; no exception handler in
the schema; an input-object argument only if the selection does not give it) is called
directly too: its arguments are read (`get_argument_values`) and
converted (Strawberry's `convert_arguments`) once per selection rather than once per value,
and no `GraphQLResolveInfo` or Strawberry `Info` is built. An exception it raises is handled
by `handle_field_error` as graphql-core would; a value that is not plain goes through
graphql-core's `complete_value`. The Telemetry API's rows (a value per signal and interval)
are such fields. Every other field,
and every case that is not plain (a null for a non-null type, an exception or an awaitable as
a value, a value the scalar refuses, a list that is not a list or tuple, any directive on a
list field, such as `@stream`), goes through graphql-core's `execute_field` unchanged, which
reads the attribute again and builds the value or the error as it always would. Field
middleware (a schema extension with `resolve`) turns the shortcut off, since it must see
every field.

`tests/indexer/test_graphql_execution.py` checks answers against Strawberry's own executor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import msgspec
from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    is_leaf_type,
)
from graphql.execution.collect_fields import CollectedFields, FieldDetailsList, GroupedFieldSet
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.fastapi import BaseContext, GraphQLRouter
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

#: Types of values that are neither awaitables nor exceptions: no check needed for them.
_PLAIN: Final = frozenset({str, int, float, bool})
#: Types of completed values that are not awaitable.
_DONE: Final = frozenset({str, int, float, bool, dict, list, type(None)})
#: Lists the shortcut walks itself (other iterables go graphql-core's way).
_SEQUENCES: Final = frozenset({list, tuple})

_LEAF: Final = 1
_OBJECT: Final = 2
_LIST: Final = 3
_CALL: Final = 4


class _SlowType:
    """Marks a field (or a list item) that graphql-core's own path completes."""

    __slots__ = ()


_SLOW: Final = _SlowType()


def _unwrap(declared: GraphQLOutputType) -> tuple[Any, bool]:
    """(the type inside a non-null wrapper, whether there was one)."""
    if isinstance(declared, GraphQLNonNull):
        return declared.of_type, True
    return declared, False


def _plain_object(named: Any) -> bool:
    return isinstance(named, GraphQLObjectType) and named.is_type_of is None


class _Direct:
    """How to read and complete one basic field of a selection set."""

    __slots__ = (
        "coerce",
        "collected",
        "declared",
        "field_def",
        "item_declared",
        "item_type",
        "kind",
        "kwargs",
        "name",
        "named",
        "non_null",
        "read",
        "resolver",
        "root_name",
    )

    def __init__(
        self,
        field: StrawberryField,
        field_def: GraphQLField,
        kind: int,
        item_declared: GraphQLOutputType | None = None,
    ) -> None:
        self.read: Callable[[Any, str], Any] = field.default_resolver
        self.name = field.python_name
        self.kind = kind
        self.field_def = field_def
        self.declared: GraphQLOutputType = field_def.type
        self.named, self.non_null = _unwrap(field_def.type)
        self.coerce = self.named.coerce_output_value if kind in (_LEAF, _CALL) else None
        self.item_declared = item_declared
        self.item_type: Any = None if item_declared is None else _unwrap(item_declared)[0]
        # The sub-selection, collected for the first value (a plan is one executor's).
        self.collected: CollectedFields | None = None
        # _CALL: the resolver, the name its root parameter takes (None: it takes none), and
        # the converted arguments, found on first use (None until then).
        self.resolver: Callable[..., Any] | None = None
        self.root_name: str | None = None
        self.kwargs: dict[str, Any] | None = None


def _leaf_argument(argument: GraphQLArgument) -> bool:
    declared = argument.type
    return is_leaf_type(declared.of_type if isinstance(declared, GraphQLNonNull) else declared)


def _called(
    field: StrawberryField, field_def: GraphQLField, handlers: bool, details: FieldDetailsList
) -> _Direct | None:
    """The shortcut of a leaf field whose resolver is a plain function of its root and of
    the scalar or enum arguments the selection gives (sync, no `info`, `self` or `parent`, no
    field extension, no exception handler, the GraphQL resolver Strawberry's own), or None."""
    resolver = field.base_resolver
    given = {argument.name.value for argument in details[0].node.arguments or ()}
    if (
        resolver is None
        or handlers
        or field.extensions
        or field.is_async
        or not hasattr(field_def.resolve, "_is_default")  # replaced after the schema was built
        or resolver.info_parameter is not None
        or resolver.self_parameter is not None
        or resolver.parent_parameter is not None
        or not is_leaf_type(_unwrap(field_def.type)[0])
        or not all(_leaf_argument(a) or n not in given for n, a in field_def.args.items())
    ):
        return None
    direct = _Direct(field, field_def, _CALL)
    direct.resolver = resolver
    root = resolver.root_parameter
    direct.root_name = None if root is None else root.name
    return direct


def _direct(
    field_def: GraphQLField | None, details: FieldDetailsList, handlers: bool
) -> _Direct | None:
    """The shortcut of a field, or None when graphql-core's path must execute it."""
    if field_def is None:
        return None
    field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(field, StrawberryField):
        return None
    if not getattr(field_def.resolve, "_is_default", False):
        return _called(field, field_def, handlers, details)
    if not field.is_basic_field:
        return None
    named, _ = _unwrap(field_def.type)
    if is_leaf_type(named):
        return _Direct(field, field_def, _LEAF)
    if _plain_object(named):
        return _Direct(field, field_def, _OBJECT)
    if (
        isinstance(named, GraphQLList)
        and _plain_object(_unwrap(named.of_type)[0])
        and not any(d.node.directives for d in details)
    ):
        return _Direct(field, field_def, _LIST, named.of_type)
    return None


_Plan = list[tuple[str, FieldDetailsList, _Direct | None]]


class LeanExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, reading basic fields without the per-field resolver chain."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self._shortcuts_on = manager is None or not manager.middlewares
        # What converts arguments as Strawberry does, and whether any field may have an
        # exception handler (then resolvers go Strawberry's way, which applies them).
        strawberry_schema = getattr(self.schema, "_strawberry_schema", None)
        converter = getattr(strawberry_schema, "schema_converter", None)
        self._config = getattr(strawberry_schema, "config", None)
        self._scalars = getattr(converter, "scalar_registry", None)
        self._handlers = converter is None or bool(
            getattr(converter, "_exception_handler_specs", True)
        )
        # Per selection set, by id (kept alive with its plan, so that its id is not reused).
        self._plans: dict[int, tuple[GroupedFieldSet, GraphQLObjectType, _Plan]] = {}

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> _Plan:
        get_field = self.schema.get_field
        plan: _Plan = [
            (
                response_name,
                details,
                _direct(get_field(parent_type, details[0].node.name.value), details, self._handlers)
                if self._shortcuts_on
                else None,
            )
            for response_name, details in grouped_field_set.items()
        ]
        self._plans[id(grouped_field_set)] = (grouped_field_set, parent_type, plan)
        return plan

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        """graphql-core's `execute_fields`, with the shortcut for basic fields."""
        found = self._plans.get(id(grouped_field_set))
        if found is not None and found[0] is grouped_field_set and found[1] is parent_type:
            plan = found[2]
        else:
            plan = self._plan(parent_type, grouped_field_set)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, details, direct in plan:
                result: Any = _SLOW
                if direct is None:
                    pass
                elif direct.kind == _LEAF:
                    # Inline: a call per leaf would be a tenth of the whole cost.
                    try:
                        value = direct.read(source_value, direct.name)
                        if value is None or value is Undefined:
                            result = _SLOW if direct.non_null else None
                        elif type(value) in _PLAIN or not (
                            isinstance(value, Exception) or is_awaitable(value)
                        ):
                            result = direct.coerce(value)  # type: ignore[misc]
                            if result is None or result is Undefined:
                                result = _SLOW
                    except Exception:
                        result = _SLOW
                elif direct.kind == _CALL:
                    result = self._call(
                        direct, parent_type, source_value, details, path, response_name,
                        position_context,
                    )  # fmt: skip
                else:
                    result = self._composite(
                        direct, parent_type, source_value, details, path, response_name,
                        position_context,
                    )  # fmt: skip
                if result is _SLOW:
                    result = self.execute_field(
                        parent_type,
                        source_value,
                        details,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                    if result is Undefined:
                        continue
                results[response_name] = result
                if type(result) not in _DONE and is_awaitable(result):
                    awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather_fields(results, awaitable_fields)

    def _arguments(self, direct: _Direct, details: FieldDetailsList) -> dict[str, Any]:
        """The resolver's keyword arguments, as graphql-core reads them and Strawberry
        converts them (the same for every value of the field in this execution)."""
        first = details[0]
        raw = get_argument_values(
            direct.field_def,
            first.node,
            self.variable_values,
            first.fragment_variable_values,
            self.hide_suggestions,
        )
        field = (direct.field_def.extensions or {})[GraphQLCoreConverter.DEFINITION_BACKREF]
        assert self._config is not None
        assert self._scalars is not None
        return convert_arguments(raw, field.arguments, self._scalars, self._config)

    def _call(
        self,
        direct: _Direct,
        parent_type: GraphQLObjectType,
        source: Any,
        details: FieldDetailsList,
        path: Path | None,
        response_name: str,
        position_context: Any,
    ) -> Any:
        """The completed value of a leaf field with a plain resolver, or `_SLOW`.

        A bad argument goes graphql-core's way (which reports it); so does a value that is
        not plain. An exception of the resolver is handled as graphql-core handles it."""
        kwargs = direct.kwargs
        if kwargs is None:
            try:
                kwargs = direct.kwargs = self._arguments(direct, details)
            except Exception:
                return _SLOW
        if direct.root_name is not None:
            kwargs = {**kwargs, direct.root_name: source}
        assert direct.resolver is not None
        try:
            value = direct.resolver(**kwargs)
        except Exception as raw_error:
            field_path = Path(path, response_name, parent_type.name)
            self.handle_field_error(raw_error, direct.declared, details, field_path)
            return None
        if value is None:
            if not direct.non_null:
                return None
        elif type(value) in _PLAIN or not (
            value is Undefined or isinstance(value, Exception) or self.is_awaitable(value)
        ):
            try:
                result = direct.coerce(value)  # type: ignore[misc]
            except Exception:
                result = None
            if result is not None and result is not Undefined:
                return result
        field_path = Path(path, response_name, parent_type.name)
        return self._complete(direct, parent_type, details, field_path, value, position_context)

    def _complete(
        self,
        direct: _Direct,
        parent_type: GraphQLObjectType,
        details: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> Any:
        """A resolved value completed by graphql-core, as its `execute_field` does."""
        nodes = [d.node for d in details]
        info = self.build_resolve_info(direct.field_def, nodes, parent_type, path)
        try:
            if self.is_awaitable(value):
                return self.complete_awaitable_value(
                    direct.declared, details, info, path, value, position_context
                )
            completed = self.complete_value(
                direct.declared, details, info, path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, direct.declared, details, path)
            return None
        if type(completed) not in _DONE and self.is_awaitable(completed):
            return self._await_completed(completed, direct.declared, details, path)
        return completed

    def _composite(
        self,
        direct: _Direct,
        parent_type: GraphQLObjectType,
        source: Any,
        details: FieldDetailsList,
        path: Path | None,
        response_name: str,
        position_context: Any,
    ) -> Any:
        """The completed value of a basic object or list field, or `_SLOW`."""
        try:
            value = direct.read(source, direct.name)
        except Exception:
            return _SLOW
        if value is None or value is Undefined:
            return _SLOW if direct.non_null else None
        field_path = Path(path, response_name, parent_type.name)
        if direct.kind == _LIST:
            if type(value) not in _SEQUENCES:
                return _SLOW
            return self._list(direct, parent_type, value, details, field_path, position_context)
        if isinstance(value, Exception) or self.is_awaitable(value):
            return _SLOW
        try:
            collected = direct.collected
            if collected is None:
                collected = direct.collected = self.collect_subfields(direct.named, details)
            completed = self._subfields(
                direct.named, value, field_path, collected, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, direct.declared, details, field_path)
            return None
        if type(completed) is not dict and self.is_awaitable(completed):
            return self._await_completed(completed, direct.declared, details, field_path)
        return completed

    def _subfields(
        self,
        object_type: GraphQLObjectType,
        value: Any,
        path: Path,
        collected: CollectedFields,
        position_context: Any,
    ) -> Any:
        """graphql-core's `execute_collected_subfields`, calling `execute_fields` itself in
        the case where that is all it does (nothing deferred)."""
        grouped, deferred = collected.grouped_field_set, collected.new_defer_usages
        if deferred or position_context is not None:
            return self.execute_collected_subfields(
                object_type, value, path, grouped, deferred, position_context
            )
        return self.execute_fields(object_type, value, path, grouped, None)

    def _list(
        self,
        direct: _Direct,
        parent_type: GraphQLObjectType,
        items: Sequence[Any],
        details: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A list of objects completed as graphql-core's `complete_iterable_value` does (its
        own per-item completion for an item that is null, an exception or an awaitable)."""
        is_awaitable = self.is_awaitable
        item_declared = direct.item_declared
        assert item_declared is not None
        item_type = direct.item_type
        info: GraphQLResolveInfo[Any] | None = None
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = path.add_key(index, None)
                if item is None or isinstance(item, Exception) or is_awaitable(item):
                    if info is None:
                        nodes = [d.node for d in details]
                        info = self.build_resolve_info(direct.field_def, nodes, parent_type, path)
                    if is_awaitable(item):
                        completed.append(
                            self.complete_awaitable_list_item_value(
                                item, item_declared, details, info, item_path, position_context
                            )
                        )
                        awaitable_indices.append(index)
                    elif self.complete_list_item_value(
                        item, completed, item_declared, details, info, item_path, position_context
                    ):
                        awaitable_indices.append(index)
                    continue
                try:
                    collected = direct.collected
                    if collected is None:  # as graphql-core: collected (once) for an item
                        collected = direct.collected = self.collect_subfields(item_type, details)
                    value = self._subfields(item_type, item, item_path, collected, position_context)
                except Exception as raw_error:
                    self.handle_field_error(raw_error, item_declared, details, item_path)
                    value = None
                if type(value) is not dict and value is not None and is_awaitable(value):
                    value = self._await_completed(value, item_declared, details, item_path)
                    awaitable_indices.append(index)
                completed.append(value)
        except Exception as raw_error:
            pending = [completed[i] for i in awaitable_indices]
            pending.extend(x for x in items[len(completed) :] if is_awaitable(x))
            if pending:
                self.settle_in_background(pending)
            self.handle_field_error(raw_error, direct.declared, details, path)
            return None
        if not awaitable_indices:
            return completed
        return self._await_completed(
            self._gather_items(completed, awaitable_indices), direct.declared, details, path
        )

    async def _gather_items(self, completed: list[Any], indices: list[int]) -> list[Any]:
        """The list with its awaitable items awaited (as graphql-core)."""
        if len(indices) == 1:
            completed[indices[0]] = await completed[indices[0]]
        else:
            awaited = await gather_with_cancel(*(completed[i] for i in indices))
            for i, value in zip(indices, awaited, strict=True):
                completed[i] = value
        return completed

    async def _await_completed(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        details: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, details, path)
            return None

    async def _gather_fields(
        self, results: dict[str, Any], awaitable_fields: list[str]
    ) -> dict[str, Any]:
        """The awaited values of `awaitable_fields` put into `results` (as graphql-core)."""
        if len(awaitable_fields) == 1:
            name = awaitable_fields[0]
            results[name] = await results[name]
        else:
            awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
        return results


_Context = TypeVar("_Context", bound=BaseContext)


class MsgspecGraphQLRouter(GraphQLRouter[_Context, None]):
    """Strawberry's FastAPI router, writing answers with msgspec: a tenth of `json.dumps`'
    time for a page of vehicles, the same JSON values (text beyond ASCII is written as UTF-8
    rather than escaped)."""

    def encode_json(self, data: object) -> bytes:
        """The JSON of an answer."""
        return msgspec.json.encode(data)


__all__ = ["LeanExecutor", "MsgspecGraphQLRouter"]
