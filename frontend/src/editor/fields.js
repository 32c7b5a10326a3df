// How the side panel edits each key of a node's `data`. The form is driven by the node type's JSON Schema
// (from the server's catalogue), so every node type gets a form, including a deployment's own. A property may
// say more than its schema does: `title` (its label), `x-widget` (how people write it) and `x-advanced`
// (shown under "Advanced", so each form starts with what is particular to its type).
import { X_WIDGETS, humanise } from "../flow/catalogue.js";

export function fieldLabel(key, schema) {
  return typeof schema?.title === "string" && schema.title.trim() ? schema.title : humanise(key);
}

export function isAdvanced(schema) {
  return schema?.["x-advanced"] === true;
}

function types(schema) {
  const t = schema?.type;
  if (Array.isArray(t)) return t;
  return t ? [t] : [];
}

// A list of objects whose fields the schema names (a switch's cases): edited as rows, one small form each.
export function isRowList(schema) {
  const t = types(schema);
  const items = schema?.items;
  return (
    t.length === 1 &&
    t[0] === "array" &&
    items !== null &&
    typeof items === "object" &&
    types(items).length === 1 &&
    types(items)[0] === "object" &&
    items.properties !== null &&
    typeof items.properties === "object" &&
    Object.keys(items.properties).length > 0
  );
}

// One of: select, tools, tool, workflow, json, rows, list, checkbox, number, integer, textarea, template, text.
export function widgetFor(schema) {
  if (X_WIDGETS.has(schema?.["x-widget"])) return schema["x-widget"];
  if (Array.isArray(schema?.enum)) return "select";
  const t = types(schema);
  if (t.includes("object")) return "json";
  if (isRowList(schema)) return "rows";
  if (t.length === 1 && t[0] === "array") {
    return schema.items?.type === "string" ? "list" : "json";
  }
  if (t.length === 1 && t[0] === "boolean") return "checkbox";
  if (t.length === 1 && t[0] === "integer") return "integer";
  if (t.length === 1 && t[0] === "number") return "number";
  // A value of any kind: typed as text and read as a template.
  if (t.length === 0) return "template";
  return "text";
}

// Widgets whose text is a template, so the form offers the `{{...}}` hints beside them.
export function takesTemplateHints(widget) {
  return widget === "textarea" || widget === "template";
}

// `{{...}}` expressions the selected node can use: the run input's fields (from the start node's
// input_schema, which docs/CONTRACT.md makes the run's input schema) and the fields the nodes upstream of it
// add to their output (their type's `output_fields`; `<field>` when the type names none).
export function templateHints(nodes, edges, nodeId, catalogue) {
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
    if (!kind || kind === "start") continue; // its fields are the run input's, hinted above
    const fields = catalogue[kind]?.output_fields || [];
    for (const field of fields.length ? fields : ["<field>"]) hints.push(`{{nodes.${id}.${field}}}`);
  }
  return hints;
}

// A row to append to a list edited as rows: the first option of each required field that has a list of them
// and, when the list's items name the node's handles (`handles_from`), a handle name no row uses yet
// (`case_2` after `case_1`..., from `prefix`), so a new row brings a new handle at once.
export function newRow(itemSchema, rows, handleKey, prefix = "case") {
  const row = {};
  const properties = itemSchema?.properties || {};
  for (const key of itemSchema?.required || []) {
    if (Array.isArray(properties[key]?.enum) && properties[key].enum.length) row[key] = properties[key].enum[0];
  }
  if (handleKey) {
    const taken = new Set((rows || []).map((item) => item?.[handleKey]));
    let n = (rows || []).length + 1;
    while (taken.has(`${prefix}_${n}`)) n += 1;
    row[handleKey] = `${prefix}_${n}`;
  }
  return row;
}

// `rows` with the row at `index` moved by `step` (-1 up, +1 down); unchanged when it would leave the list.
export function moveRow(rows, index, step) {
  const to = index + step;
  if (to < 0 || to >= rows.length) return rows;
  const next = [...rows];
  [next[index], next[to]] = [next[to], next[index]];
  return next;
}
