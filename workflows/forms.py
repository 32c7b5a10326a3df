"""The run input form a workflow's start node asks for: built from its `input_schema` when a form can stand for
it (a flat object of strings, numbers, integers and booleans), read back into the run's input."""

from __future__ import annotations

import json
from typing import Any

from django import forms

_SIMPLE_TYPES = {"string", "integer", "number", "boolean"}
# What a choice field cleans to when nothing is chosen: not None or "", which an enum may offer as values.
_NOTHING_CHOSEN = object()


def _simple_type(prop: object) -> str | None:
    """The type a form field can stand for: one of _SIMPLE_TYPES, alone or with "null" (["string", "null"]:
    a blank field leaves the key out, which such a schema accepts as well)."""
    if not isinstance(prop, dict):
        return None
    kind = prop.get("type")
    if isinstance(kind, list):
        others = [item for item in kind if item != "null"]
        kind = others[0] if len(others) == 1 else None
    return kind if isinstance(kind, str) and kind in _SIMPLE_TYPES else None


def _start_data(graph: dict[str, Any]) -> dict[str, Any]:
    start = next((node for node in graph.get("nodes", []) if node.get("type") == "start"), None)
    data = (start or {}).get("data")
    return data if isinstance(data, dict) else {}


def sample_input(graph: dict[str, Any]) -> dict[str, Any] | None:
    """The start node's `sample_input`: what the run form starts filled in with."""
    sample = _start_data(graph).get("sample_input")
    return sample if isinstance(sample, dict) else None


def simple_input_schema(graph: dict[str, Any]) -> dict[str, Any] | None:
    """The start node's `input_schema` when a form can stand for it: an object whose properties are all
    strings, numbers, integers or booleans (optionally with an `enum`). Anything richer is edited as JSON."""
    schema = _start_data(graph).get("input_schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    if not all(_simple_type(p) for p in properties.values()):
        return None
    return schema


def input_form_class(schema: dict[str, Any]) -> type[forms.Form]:
    """A form with one field per property; values are converted to the schema's types, and the schema itself
    is still checked by run_start (so `minimum`, `pattern`... are reported as its errors)."""
    required = set(schema.get("required") or [])
    fields: dict[str, forms.Field] = {}
    for name, prop in schema["properties"].items():
        kind = _simple_type(prop)
        options: dict[str, Any] = {
            "label": prop.get("title") or name,
            "help_text": prop.get("description", ""),
            "required": name in required and kind != "boolean",
        }
        if "default" in prop:
            options["initial"] = prop["default"]
        if isinstance(prop.get("enum"), list):
            # Text as it is; anything else (and "") as JSON, so true, null and "" read as the schema writes them.
            choices = [
                (json.dumps(value), value if isinstance(value, str) and value else json.dumps(value))
                for value in prop["enum"]
            ]
            if not options["required"]:
                choices.insert(0, ("", "—"))
            if "initial" in options:
                options["initial"] = json.dumps(options["initial"])
            field: forms.Field = forms.TypedChoiceField(
                choices=choices,
                coerce=json.loads,
                # django-stubs allow only str or None, but Django takes any value for an empty choice.
                empty_value=_NOTHING_CHOSEN,  # type: ignore[arg-type]
                **options,
            )
        elif kind == "boolean":
            field = forms.BooleanField(**options)
        elif kind == "integer":
            field = forms.IntegerField(**options)
        elif kind == "number":
            field = forms.FloatField(**options)
        else:
            field = forms.CharField(**options)
        fields[f"input__{name}"] = field
    return type("RunInputForm", (forms.Form,), fields)


def input_form_initial(schema: dict[str, Any], sample: dict[str, Any] | None) -> dict[str, Any]:
    """The form's starting values from a sample input: one per property the sample gives, in the form's own
    terms (a choice field's values are JSON text)."""
    initial: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if sample is None or name not in sample:
            continue
        value = sample[name]
        initial[f"input__{name}"] = json.dumps(value) if isinstance(prop.get("enum"), list) else value
    return initial


def input_from_form(form: forms.Form) -> dict[str, Any]:
    """The run input: optional fields left blank are left out (not sent as "" or null, which the schema's type
    may refuse), so "not required" means what it says and a template can give a default for them. A checkbox
    is never blank: unticked, it is false."""
    run_input: dict[str, Any] = {}
    for name, value in form.cleaned_data.items():
        field = form.fields[name]
        if isinstance(field, forms.TypedChoiceField):
            blank = value is _NOTHING_CHOSEN  # a chosen null or "" is a value
        else:
            blank = value is None or value == ""
        if blank:
            continue
        if isinstance(field, forms.FloatField) and isinstance(value, float) and value.is_integer():
            value = int(value)  # a "number" typed as 12 stays 12, not 12.0 (in templates too)
        run_input[name.removeprefix("input__")] = value
    return run_input
