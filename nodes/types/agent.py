"""`agent`: an LLM with templated prompts, registered tools it may call, and optionally a structured answer.

The tool loop: the model may ask for several tools per round, up to `max_tool_rounds` rounds. Arguments are
checked against each tool's JSON Schema before any request (a violation goes back to the model as the tool's
result, so it can correct itself); every call, its result or error, is recorded in `tool_calls` and the
ledger. With `output_schema` the final answer must be JSON that validates: JSON mode is requested (a strict
schema where the provider supports one), then one repair round shows the model the validation errors, then
the node fails with those errors. Validated fields are merged into the output; otherwise the text is
`message`.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from nodes import register
from nodes.base import (
    LLM,
    ChatAnswer,
    NodeContext,
    NodeError,
    NodeFailure,
    NodeResult,
    NodeType,
    ToolRefused,
    data_schema,
    field_schema,
    template_check,
)
from nodes.spec import NodeSpec

DEFAULT_MAX_TOOL_ROUNDS = 5
IDENTIFIER = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"}


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    problems = template_check("system_prompt", "user_prompt")(data)
    schema = data.get("output_schema")
    if schema is not None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            problems.append(("output_schema", f"not a valid JSON Schema: {exc.message}"))
        else:
            if schema.get("type") != "object":
                message = 'must describe an object ("type": "object"), whose fields join the output'
                problems.append(("output_schema", message))
    return problems


def execute(ctx: NodeContext) -> NodeResult:
    llm = ctx.llm
    data = ctx.data
    model = llm.resolve_model(data.get("model"))
    llm.provider_kwargs(model)  # fail at once, saying what to configure, when no provider is set up
    tools = load_tools(ctx, data.get("tools") or [])
    messages: list[dict[str, Any]] = []
    if data.get("system_prompt"):
        messages.append({"role": "system", "content": text(ctx.render(data["system_prompt"]))})
    messages.append({"role": "user", "content": text(ctx.render(data["user_prompt"]))})
    schema = data.get("output_schema")
    usage = llm.Usage(model=model)
    conversation = Conversation(ctx, llm, model, usage, temperature=data.get("temperature"))
    calls: list[dict[str, Any]] = []
    try:
        answer = conversation.run_tools(
            messages, tools, calls, max_rounds=int(data.get("max_tool_rounds", DEFAULT_MAX_TOOL_ROUNDS)), schema=schema
        )
        fields: dict[str, Any] = (
            {"message": answer} if schema is None else conversation.structured(messages, answer, schema)
        )
    except NodeFailure as exc:
        exc.tool_calls = [ctx.tools.record(call) for call in calls] + exc.tool_calls  # they happened all the same
        raise
    fields["tool_calls"] = [public_call(call) for call in calls]
    return NodeResult(fields=fields, tool_calls=[ctx.tools.record(call) for call in calls], llm_usage=usage.as_dict())


def text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def load_tools(ctx: NodeContext, names: list[str]) -> dict[str, Any]:
    if not names:
        return {}
    found = ctx.tools.find(names)
    missing = [name for name in names if name not in found]
    if missing:
        raise NodeError(f"unknown tool(s) {', '.join(missing)}: register them first (admin or /api/tools/)")
    return {name: found[name] for name in names}  # offered in the order the node lists them


def public_call(call: dict[str, Any]) -> dict[str, Any]:
    """What a tool call looks like in the node's output (no URL: it may embed path parameters)."""
    return {key: call.get(key) for key in ("tool", "arguments", "status_code", "result", "error", "duration_ms")}


class Conversation:
    def __init__(self, ctx: NodeContext, llm: LLM, model: str, usage: Any, *, temperature: float | None) -> None:
        self.ctx = ctx
        self.llm = llm
        self.model = model
        self.usage = usage
        self.temperature = temperature

    def ask(self, messages: list[dict[str, Any]], **kwargs: Any) -> ChatAnswer:
        batcher = self.llm.TokenBatcher(lambda chunk: self.ctx.emit("llm_token", {"text": chunk}))
        result = self.llm.chat(
            model=self.model, messages=messages, temperature=self.temperature, on_text=batcher, **kwargs
        )
        batcher.flush()
        self.usage.add(result.usage)
        return result

    def run_tools(
        self,
        messages: list[dict[str, Any]],
        tools: dict[str, Any],
        calls: list[dict[str, Any]],
        *,
        max_rounds: int,
        schema: dict[str, Any] | None,
    ) -> str:
        offered = [self.ctx.tools.function(tool) for tool in tools.values()] or None
        for round_ in range(max_rounds + 1):
            # JSON mode and tools do not mix well across providers: ask for JSON only when no tool is offered.
            response_format = None if offered else self.json_format(schema)
            result = self.ask(messages, tools=offered, response_format=response_format)
            if not result.tool_calls:
                return result.content
            if round_ == max_rounds:
                raise NodeError(f"the model still asked for tools after {max_rounds} rounds (max_tool_rounds)")
            messages.append(result.raw_message)
            for request in result.tool_calls:
                record = self.call_tool(tools, request, index=len(calls))
                calls.append(record)
                self.ctx.emit("tool_call", public_call(record))
                outcome = {"error": record["error"]} if record.get("error") else {"result": record.get("result")}
                messages.append({"role": "tool", "tool_call_id": request.id, "content": text(outcome)})
        raise AssertionError("unreachable")

    def call_tool(self, tools: dict[str, Any], request: Any, *, index: int) -> dict[str, Any]:
        tool = tools.get(request.name)
        base = {"tool": request.name, "arguments": request.arguments, "tool_id": getattr(tool, "pk", None)}
        if tool is None:
            return {**base, "error": f"there is no tool named {request.name!r}; use one of: {', '.join(tools)}"}
        try:
            arguments = json.loads(request.arguments or "{}")
        except ValueError as exc:
            return {**base, "error": f"the arguments are not valid JSON: {exc}"}
        if not isinstance(arguments, dict):
            return {**base, "error": "the arguments must be a JSON object"}
        try:
            return self.ctx.tools.call(tool, arguments, call_index=index)
        except ToolRefused as exc:
            return {**base, "arguments": arguments, "error": str(exc)}

    def json_format(self, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        if self.llm.supports_schema(self.model):
            return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": False}}
        return {"type": "json_object"}

    def structured(self, messages: list[dict[str, Any]], answer: str, schema: dict[str, Any]) -> dict[str, Any]:
        errors = schema_errors(self.llm, answer, schema)
        if not errors:
            fields: dict[str, Any] = self.llm.parse_json_answer(answer)  # an object: the schema says so
            return fields
        messages.append({"role": "assistant", "content": answer})
        messages.append(
            {
                "role": "user",
                "content": "Your answer does not match the required JSON Schema:\n"
                + "\n".join(f"- {error}" for error in errors)
                + f"\nThe schema:\n{json.dumps(schema)}\nAnswer again with only the corrected JSON object.",
            }
        )
        repaired = self.ask(messages, response_format=self.json_format(schema)).content
        errors = schema_errors(self.llm, repaired, schema)
        if errors:
            raise NodeError("the model's answer does not match output_schema after one repair: " + "; ".join(errors))
        repaired_fields: dict[str, Any] = self.llm.parse_json_answer(repaired)
        return repaired_fields


def schema_errors(llm: LLM, answer: str, schema: dict[str, Any]) -> list[str]:
    try:
        value = llm.parse_json_answer(answer)
    except ValueError as exc:
        return [f"the answer is not JSON ({exc})"]
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda error: list(error.absolute_path))
    return [f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}" for error in errors[:20]]


AGENT = register(
    NodeType(
        spec=NodeSpec(
            type="agent",
            data_schema=data_schema(
                {
                    "model": {"type": "string", "minLength": 1, "maxLength": 200},
                    "system_prompt": field_schema(
                        {"type": "string", "maxLength": 100000}, title="System prompt", widget="textarea"
                    ),
                    "user_prompt": field_schema(
                        {"type": "string", "minLength": 1, "maxLength": 100000}, title="User prompt", widget="textarea"
                    ),
                    "tools": {
                        "type": "array",
                        "items": IDENTIFIER,
                        "maxItems": 50,
                        "uniqueItems": True,
                        "x-widget": "tools",
                    },
                    "output_schema": {"type": "object", "title": "Output schema (JSON Schema)"},
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    "max_tool_rounds": {"type": "integer", "minimum": 0, "maximum": 20, "title": "Max tool rounds"},
                },
                required=["user_prompt"],
            ),
            check=check,
        ),
        execute=execute,
        uses_llm=True,
        io_bound=True,
        title="Agent",
        description="Asks an LLM with templated prompts; it may call your tools and answer in a JSON Schema.",
        icon="✦",
        colour="#7048e8",
        group="AI",
        order=60,
        summary="{{model}}",
        output_fields=("message", "tool_calls"),
        side_effects=True,
        tool_fields={"tools": "many"},
    )
)
