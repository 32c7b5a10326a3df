// How the side panel edits each key of a node's `data`. The form is driven by the node type's JSON Schema
// (from the server's registry), so every node type gets a form, including a deployment's own; these hints
// only choose better widgets for keys whose schema alone doesn't say how people write them.

// Keys every type accepts; shown under "Advanced" so each form starts with what is particular to its type.
export const COMMON_KEYS = ["label", "retries", "timeout_seconds"];

// Long text, written as templates: a textarea with the template hint.
const TEXTAREA_KEYS = new Set(["system_prompt", "user_prompt", "policy", "instruction", "message"]);
// Short values that may be templates.
const TEMPLATE_KEYS = new Set(["left", "right", "subject"]);

const LABELS = {
  input_schema: "Input schema (JSON Schema)",
  output_schema: "Output schema (JSON Schema)",
  output: "Output (object of templates)",
  arguments: "Arguments (object; values may be templates)",
  user_prompt: "User prompt",
  system_prompt: "System prompt",
  max_tool_rounds: "Max tool rounds",
  max_nodes: "Max nodes",
  timeout_seconds: "Timeout (seconds)",
  editable_fields: "Fields the approver may edit",
  allow_self_approval: "Allow self-approval",
  allow_approvals: "Allow approval steps",
};

export function fieldLabel(key) {
  return LABELS[key] || key.charAt(0).toUpperCase() + key.slice(1).replaceAll("_", " ");
}

function types(schema) {
  const t = schema?.type;
  if (Array.isArray(t)) return t;
  return t ? [t] : [];
}

// One of: select, tools, tool, json, list, checkbox, number, integer, textarea, template, text.
export function widgetFor(key, schema) {
  if (key === "tools") return "tools";
  if (key === "tool") return "tool";
  if (Array.isArray(schema?.enum)) return "select";
  const t = types(schema);
  if (TEXTAREA_KEYS.has(key)) return "textarea";
  if (TEMPLATE_KEYS.has(key)) return "template";
  if (t.includes("object")) return "json";
  if (t.length === 1 && t[0] === "array") {
    return schema.items?.type === "string" ? "list" : "json";
  }
  if (t.length === 1 && t[0] === "boolean") return "checkbox";
  if (t.length === 1 && t[0] === "integer") return "integer";
  if (t.length === 1 && t[0] === "number") return "number";
  if (t.length === 0 && !schema?.enum && key !== "label") return "template";
  return "text";
}

// Widgets whose text is a template, so the form offers the `{{...}}` hints beside them.
export function takesTemplateHints(widget) {
  return widget === "textarea" || widget === "template";
}

// `{{...}}` expressions the selected node can use: the run input's fields (from the start node's
// input_schema) and the own outputs of the nodes upstream of it.
export function templateHints(nodes, edges, nodeId) {
  const hints = [];
  const start = nodes.find((node) => node.data.kind === "start");
  const properties = start?.data.config?.input_schema?.properties;
  if (properties && typeof properties === "object") {
    for (const name of Object.keys(properties)) hints.push(`{{input.${name}}}`);
  } else {
    hints.push("{{input.<field>}}");
  }
  const parents = new Map();
  for (const edge of edges) {
    if (!parents.has(edge.target)) parents.set(edge.target, []);
    parents.get(edge.target).push(edge.source);
  }
  const seen = new Set();
  const stack = [...(parents.get(nodeId) || [])];
  while (stack.length) {
    const id = stack.pop();
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(parents.get(id) || []));
  }
  const byId = new Map(nodes.map((node) => [node.id, node]));
  for (const id of [...seen].sort()) {
    const kind = byId.get(id)?.data.kind;
    if (kind && kind !== "start") hints.push(`{{nodes.${id}.${OUTPUT_FIELD[kind] || "<field>"}}}`);
  }
  return hints;
}

// The field a node type adds to its output (docs/CONTRACT.md, Node types), to suggest in hints.
const OUTPUT_FIELD = {
  if_else: "condition",
  agent: "message",
  tool: "result",
  guardrails: "guardrail_result",
  user_approval: "approval",
  cognitive: "cognitive",
  join: "branches",
};
