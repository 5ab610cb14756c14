"""``GET /api/v3/models`` entries built from the catalogue.

WaveSpeed describes each model's request body as JSON Schema under
``api_schema.api_schemas[0].request_schema``; clients (the MCP server, our catalogue checks) read
``properties``, ``required`` and ``x-order-properties`` from there.
"""

from __future__ import annotations

from typing import Any

from providers.catalogue import InputField, ModelSpec


def field_schema(field: InputField) -> dict[str, Any]:
    """One request property as JSON Schema."""
    schema: dict[str, Any]
    if field.type == "enum":
        values = list(field.values or ())
        kind = "integer" if all(isinstance(v, int) for v in values) else "string"
        schema = {"type": kind, "enum": values}
    elif field.type == "size":
        schema = {"type": "string", "pattern": r"^\d+\*\d+$", "x-ui-component": "size"}
        if field.min is not None:
            schema["minimum"] = field.min
        if field.max is not None:
            schema["maximum"] = field.max
    elif field.type == "image":
        schema = {"type": "string", "format": "uri", "x-ui-component": "uploader"}
    elif field.type == "images":
        schema = {
            "type": "array",
            "items": {"type": "string", "format": "uri"},
            "x-ui-component": "uploaders",
        }
        if field.min_items is not None:
            schema["minItems"] = field.min_items
        if field.max_items is not None:
            schema["maxItems"] = field.max_items
    else:
        schema = {"type": field.type}
        if field.min is not None:
            schema["minimum"] = field.min
        if field.max is not None:
            schema["maximum"] = field.max
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
    if field.default is not None:
        schema["default"] = field.default
    if field.description:
        schema["description"] = field.description
    return schema


def model_entry(spec: ModelSpec, order: int) -> dict[str, Any]:
    """One item of the model list."""
    operations = [str(op) for op in spec.operations]
    return {
        "model_id": spec.path,
        "name": spec.name,
        "description": spec.notes or f"{spec.name}: {', '.join(operations).replace('_', ' ')}",
        "type": operations[0].replace("_", "-"),
        "base_price": float(spec.price_usd),
        "sort_order": order,
        "api_schema": {
            "api_schemas": [
                {
                    "type": "model_run",
                    "method": "POST",
                    "api_path": f"/api/v3/{spec.path}",
                    "request_schema": {
                        "type": "object",
                        "properties": {f.name: field_schema(f) for f in spec.inputs},
                        "required": [f.name for f in spec.inputs if f.required],
                        "x-order-properties": [f.name for f in spec.inputs],
                    },
                }
            ]
        },
    }
