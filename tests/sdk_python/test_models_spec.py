"""The SDK's operations and models against docs/openapi.yaml: every operation has a method on
both clients, every schema a model with the same fields, nullability and enum values."""
import dataclasses
import inspect
import typing
from pathlib import Path

import bourse
import yaml
from bourse import models
from bourse.client import OPERATIONS, AsyncClient, Client

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())
SCHEMAS = SPEC["components"]["schemas"]
# BourseError, FieldError, place_order's and amend_order's parameters
WRAPPERS = {"Problem", "FieldError", "OrderSubmit", "PatchedOrderAmend"}


def _spec_operations():
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            yield op["operationId"], method.upper(), path, op


def _resolve(schema):
    if "$ref" in schema:
        return SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" in schema:
        return _resolve(schema["allOf"][0])
    return schema


def test_every_operation_has_a_method():
    # signed: a non-empty security requirement (public operations declare `security: []`)
    spec = {op_id: (method, path, bool(op.get("security"))) for op_id, method, path, op in _spec_operations()}
    assert set(OPERATIONS) == set(spec), "operations added to or removed from the API"
    for op_id, (method, path, name, signed) in OPERATIONS.items():
        assert spec[op_id] == (method, path, signed), op_id
        assert callable(getattr(Client, name)) and inspect.iscoroutinefunction(getattr(AsyncClient, name)), name
        sync_params = inspect.signature(getattr(Client, name)).parameters
        async_params = inspect.signature(getattr(AsyncClient, name)).parameters
        assert list(sync_params) == list(async_params), name


def test_query_parameters_are_method_parameters():
    for op_id, _, _, op in _spec_operations():
        name = OPERATIONS[op_id][2]
        params = inspect.signature(getattr(Client, name)).parameters
        for parameter in op.get("parameters", []):
            assert parameter["name"] in params, f"{name}() lacks {parameter['name']}"


def test_lists_have_iterators():
    for op_id, _, _, op in _spec_operations():
        schema = op["responses"]["200"]["content"]["application/json"]["schema"] if "200" in op["responses"] else {}
        target = _resolve(schema) if schema else {}
        if "next_cursor" in target.get("properties", {}):
            name = OPERATIONS[op_id][2]
            assert hasattr(Client, f"iter_{name}") and hasattr(AsyncClient, f"iter_{name}"), name


def _field_types(model):
    hints = typing.get_type_hints(model, vars(models))
    return {f.name: hints[f.name] for f in dataclasses.fields(model) if f.name != "extra"}


def _nullable(hint) -> bool:
    return type(None) in typing.get_args(hint)


def _literal_values(hint):
    for arg in (hint, *typing.get_args(hint)):
        if typing.get_origin(arg) is typing.Literal:
            return set(typing.get_args(arg))
        if typing.get_origin(arg) is list:
            found = _literal_values(typing.get_args(arg)[0])
            if found:
                return found
    return None


def test_every_schema_has_a_model():
    objects = {name for name, s in SCHEMAS.items() if s.get("type") == "object"}
    pages = {name for name in objects if set(SCHEMAS[name].get("properties", {})) <= {"results", "next_cursor"}}
    assert objects - pages - WRAPPERS == set(models.MODELS)


def test_models_match_the_schemas():
    for name, model in models.MODELS.items():
        schema = SCHEMAS[name]
        fields = _field_types(model)
        assert set(fields) == set(schema["properties"]), name
        assert set(schema.get("required", [])) == set(fields), f"{name}: every field is required on the wire"
        for field, hint in fields.items():
            prop = schema["properties"][field]
            types = prop.get("type")
            spec_nullable = isinstance(types, list) and "null" in types
            assert _nullable(hint) == spec_nullable, f"{name}.{field}"
            target = _resolve(prop)
            if "items" in prop:
                target = _resolve(prop["items"])
            if "enum" in target:
                assert _literal_values(hint) == set(target["enum"]), f"{name}.{field}"


def test_place_order_takes_the_order_submit_fields():
    props = SCHEMAS["OrderSubmit"]["properties"]
    for client in (Client, AsyncClient):
        params = set(inspect.signature(client.place_order).parameters) - {"self"}
        assert params == set(props)


def test_bourse_error_carries_the_problem():
    problem = {"type": "/docs/errors#x", "title": "T", "status": 400, "detail": "D", "code": "validation_error",
               "request_id": "r", "errors": [{"field": "price", "code": "tick_size", "message": "m", "allowed": "0.01"}]}
    standard = {"type", "title", "status", "detail", "code", "request_id", "errors"}
    assert standard <= set(SCHEMAS["Problem"]["properties"])
    error = bourse.BourseError.from_problem(400, problem)
    for field in standard - {"type"}:
        assert hasattr(error, field), field
    # every extension member the schema declares is reachable by name
    extensions = set(SCHEMAS["Problem"]["properties"]) - standard
    assert extensions, "the Problem schema declares the members each code adds"
    extended = bourse.BourseError.from_problem(422, {**problem, **{name: f"v-{name}" for name in extensions}})
    assert all(extended.extension(name) == f"v-{name}" for name in extensions)
    assert set(SCHEMAS["FieldError"]["properties"]) == {f.name for f in dataclasses.fields(bourse.FieldError)}
    assert error.errors[0].allowed == "0.01" and error.fields == ["price"]
