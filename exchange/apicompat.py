"""Breaking-change check between two OpenAPI 3.1 documents (docs/versioning.md).

No OpenAPI diff tool that installs from the registries here works on Bourse's OpenAPI 3.1
document (npm's ``openapi-diff`` 0.24.1 refuses 3.1; ``@useoptic/optic`` 1.0.9 crashes at
start-up on Node 20 with its pinned ajv; ``oasdiff`` is a Go binary, on neither registry), so
this is the smallest checker of the rules Bourse promises: compared with the last release, a change is breaking when it

- removes a path, an operation, a parameter, a documented response status, a request or
  response field, or an enum value;
- adds a required parameter or a required request field;
- narrows a request type (fewer JSON types accepted) or widens a response type.

``python -m exchange.apicompat OLD NEW [CHANGELOG]`` prints each breaking change not listed
under the changelog's ``### Breaking`` heading of the newest section, and exits 1 if any.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


@dataclass(frozen=True)
class Change:
    where: str  # "POST /api/v1/orders"
    what: str   # "request field `price` removed"
    name: str   # the element concerned ("price"), which the changelog must name

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class _Doc:
    def __init__(self, spec: dict):
        self.spec = spec

    def resolve(self, schema):
        """Follow ``$ref`` (and single-element ``allOf`` wrappers) to a schema dict."""
        seen = 0
        while isinstance(schema, dict):
            if "$ref" in schema:
                node = self.spec
                for part in schema["$ref"].lstrip("#/").split("/"):
                    node = node[part]
                schema = node
            elif list(schema.get("allOf", [])) and len(schema["allOf"]) == 1 and "properties" not in schema:
                schema = {**{k: v for k, v in schema.items() if k != "allOf"}, **self.resolve(schema["allOf"][0])}
            else:
                return schema
            seen += 1
            if seen > 50:
                raise ValueError("reference cycle")
        return schema or {}


def _types(schema: dict) -> set[str]:
    t = schema.get("type")
    if t is None:
        if "oneOf" in schema or "anyOf" in schema:
            return {"*"}
        return {"*"} if not schema.get("properties") else {"object"}
    types = set(t if isinstance(t, list) else [t])
    if schema.get("nullable"):
        types.add("null")
    if "integer" in types and "number" not in types:
        return types
    return types


def _compare_schema(old_doc, new_doc, old, new, where, label, direction, out, depth=0):
    """``direction``: "request" (the client sends it) or "response" (the client reads it)."""
    if depth > 12:
        return
    old, new = old_doc.resolve(old), new_doc.resolve(new)
    old_types, new_types = _types(old), _types(new)
    if "*" not in old_types and "*" not in new_types:
        # integer is a subset of number
        def covers(a, b):
            return all(t in a or (t == "integer" and "number" in a) for t in b)
        if direction == "request" and not covers(new_types, old_types):
            out.append(Change(where, f"{label}: type narrowed from {sorted(old_types)} to {sorted(new_types)}", label))
        if direction == "response" and not covers(old_types, new_types):
            out.append(Change(where, f"{label}: type widened from {sorted(old_types)} to {sorted(new_types)}", label))
    if "enum" in old:
        removed = [v for v in old["enum"] if v not in new.get("enum", old["enum"])]
        for value in removed:
            out.append(Change(where, f"{label}: enum value `{value}` removed", str(value)))
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_prop in old_props.items():
        field = f"{direction} field `{name}`" if label in ("request body", "response body") else f"{label}.`{name}`"
        if name not in new_props:
            out.append(Change(where, f"{field} removed", name))
            continue
        _compare_schema(old_doc, new_doc, old_prop, new_props[name], where, field, direction, out, depth + 1)
    if direction == "request":
        for name in set(new.get("required", [])) - set(old.get("required", [])):
            out.append(Change(where, f"{label}: field `{name}` became required", name))
    if "items" in old and "items" in new:
        _compare_schema(old_doc, new_doc, old["items"], new["items"], where, f"{label}[]", direction, out, depth + 1)


def _params(doc: _Doc, item: dict, operation: dict) -> dict:
    out = {}
    for param in [*item.get("parameters", []), *operation.get("parameters", [])]:
        param = doc.resolve(param)
        out[(param["in"], param["name"])] = param
    return out


def _json_schema(doc: _Doc, holder: dict | None):
    if not holder:
        return None
    holder = doc.resolve(holder)
    for media, body in holder.get("content", {}).items():
        if "json" in media:
            return body.get("schema")
    return None


def breaking_changes(old_spec: dict, new_spec: dict) -> list[Change]:
    old_doc, new_doc = _Doc(old_spec), _Doc(new_spec)
    out: list[Change] = []
    for path, old_item in old_spec.get("paths", {}).items():
        new_item = new_spec.get("paths", {}).get(path)
        if new_item is None:
            out.append(Change(path, "path removed", path))
            continue
        for method in METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            old_op, new_op = old_item[method], new_item.get(method)
            if new_op is None:
                out.append(Change(where, "operation removed", where))
                continue
            old_params, new_params = _params(old_doc, old_item, old_op), _params(new_doc, new_item, new_op)
            for key, param in old_params.items():
                label = f"{key[0]} parameter `{key[1]}`"
                if key not in new_params:
                    out.append(Change(where, f"{label} removed", key[1]))
                    continue
                _compare_schema(old_doc, new_doc, param.get("schema", {}), new_params[key].get("schema", {}),
                                where, label, "request", out)
            for key, param in new_params.items():
                if key not in old_params and param.get("required"):
                    out.append(Change(where, f"new required {key[0]} parameter `{key[1]}`", key[1]))
            old_body, new_body = _json_schema(old_doc, old_op.get("requestBody")), _json_schema(new_doc, new_op.get("requestBody"))
            if old_body is not None and new_body is None:
                out.append(Change(where, "request body removed", "request body"))
            elif new_body is not None:
                if old_body is None and new_doc.resolve(new_op["requestBody"]).get("required"):
                    out.append(Change(where, "new required request body", "request body"))
                elif old_body is not None:
                    _compare_schema(old_doc, new_doc, old_body, new_body, where, "request body", "request", out)
            for status, old_response in old_op.get("responses", {}).items():
                new_response = new_op.get("responses", {}).get(status)
                if new_response is None:
                    out.append(Change(where, f"response {status} removed", status))
                    continue
                old_schema, new_schema = _json_schema(old_doc, old_response), _json_schema(new_doc, new_response)
                if old_schema is not None and new_schema is not None:
                    _compare_schema(old_doc, new_doc, old_schema, new_schema, where, "response body", "response", out)
    # Drop duplicates (a shared schema reached through several statuses) keeping order.
    return list(dict.fromkeys(out))


def listed_as_breaking(changelog: str) -> str:
    """The ``### Breaking`` part of the newest section of the changelog."""
    sections = re.split(r"^## ", changelog, flags=re.M)
    newest = sections[1] if len(sections) > 1 else ""
    match = re.search(r"^### Breaking\n(.*?)(?=^### |\Z)", newest, flags=re.M | re.S)
    return match.group(1) if match else ""


def unlisted(changes: list[Change], changelog: str) -> list[Change]:
    """Changes the changelog's Breaking list does not name (by operation and element)."""
    breaking = listed_as_breaking(changelog)
    lines = breaking.splitlines()
    return [c for c in changes
            if not any(c.where in line and f"`{c.name}`" in line for line in lines)
            and not any(c.where in line and c.name == c.where for line in lines)]


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    old, new = (yaml.safe_load(Path(p).read_text()) for p in argv[:2])
    changelog = Path(argv[2]).read_text() if len(argv) == 3 else ""
    problems = unlisted(breaking_changes(old, new), changelog)
    for change in problems:
        print(f"breaking: {change}")
    if not problems:
        print(f"no unlisted breaking change between {argv[0]} and {argv[1]}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
