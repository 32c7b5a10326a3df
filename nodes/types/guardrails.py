"""`guardrails`: an LLM checks the data (or a templated `subject`) against a natural-language policy and
routes on `pass` or `fail`.

It fails closed: an answer that is not a strict verdict, a timeout or a provider error routes to `fail`
with the reason, never to `pass`. A missing provider configuration fails the node instead, so the operator
sees it rather than every input being refused.
"""

from __future__ import annotations

import json
from typing import Any

from nodes import register
from nodes.base import NodeContext, NodeResult, NodeType, data_schema, field_schema, template_check
from nodes.spec import NodeSpec

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"result": {"enum": ["pass", "fail"]}, "reason": {"type": "string"}},
    "required": ["result", "reason"],
    "additionalProperties": False,
}
SYSTEM_PROMPT = (
    "You check data against a policy. Decide whether the data complies with the policy. Answer with one JSON "
    'object and nothing else: {"result": "pass" or "fail", "reason": "one sentence"}. When unsure, fail.'
)


def execute(ctx: NodeContext) -> NodeResult:
    llm = ctx.llm
    model = llm.resolve_model(ctx.data.get("model"))
    llm.provider_kwargs(model)
    subject = ctx.render(ctx.data["subject"]) if "subject" in ctx.data else ctx.input
    policy = ctx.render(ctx.data["policy"])
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"Policy:\n{policy}\n\nData:\n{json.dumps(subject, ensure_ascii=False, indent=1)}",
        },
    ]
    usage = llm.Usage(model=model)
    response_format: dict[str, Any] = (
        {"type": "json_schema", "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}}
        if llm.supports_schema(model)
        else {"type": "json_object"}
    )
    try:
        answer = llm.chat(model=model, messages=messages, response_format=response_format, temperature=0)
    except llm.LLMError as exc:
        return verdict("fail", f"the policy check could not run (failing closed): {exc}", usage)
    usage.add(answer.usage)
    result, reason = parse_verdict(llm, answer.content)
    return verdict(result, reason, usage)


def parse_verdict(llm: Any, content: str) -> tuple[str, str]:
    try:
        value = llm.parse_json_answer(content)
    except ValueError:
        return "fail", f"the policy checker did not answer with JSON (failing closed): {content[:200]!r}"
    if (
        not isinstance(value, dict)
        or set(value) != {"result", "reason"}
        or value["result"] not in ("pass", "fail")
        or not isinstance(value["reason"], str)
    ):
        return "fail", f"the policy checker's verdict is not strict (failing closed): {json.dumps(value)[:200]}"
    return value["result"], value["reason"]


def verdict(result: str, reason: str, usage: Any) -> NodeResult:
    return NodeResult(
        fields={"guardrail_result": result, "guardrail_reason": reason},
        handle=result,
        llm_usage=usage.as_dict() if usage.calls else None,
    )


GUARDRAILS = register(
    NodeType(
        spec=NodeSpec(
            type="guardrails",
            data_schema=data_schema(
                {
                    "policy": field_schema({"type": "string", "minLength": 1, "maxLength": 20000}, widget="textarea"),
                    "model": {"type": "string", "minLength": 1, "maxLength": 200},
                    "subject": field_schema({}, widget="template"),
                },
                required=["policy"],
            ),
            handles=frozenset({"pass", "fail"}),
            required_handles=True,
            check=template_check("policy", "subject"),
        ),
        execute=execute,
        uses_llm=True,
        io_bound=True,
        title="Guardrails",
        description="An LLM checks the data against a policy and routes on pass or fail, failing closed.",
        icon="⚖",
        colour="#7048e8",
        group="AI",
        order=70,
        summary="{{model}}",
        output_fields=("guardrail_result", "guardrail_reason"),
        original_names=("guardrail",),
    )
)
