// The node type catalogue the pages embed (`flow-catalogue`, from the server's registry): everything the canvas
// shows about a type (title, icon, colour, palette place, summary line, handles, form) comes from it, so a type
// a deployment registers draws and configures like a built-in one. A key a type leaves out gets a neutral
// default; a key of the wrong kind is reported and gets the default too, so one bad entry cannot stop the editor.

export const NEUTRAL_COLOUR = "#868e96";
export const DEFAULT_GROUP = "Other";
export const DEFAULT_ORDER = 1000;
// The widgets a data_schema property may ask for with `x-widget`, beyond what its JSON Schema implies.
export const X_WIDGETS = new Set(["textarea", "template", "tools", "tool", "workflow"]);

// "user_approval" -> "User approval": the title of a type, or the label of a field, that names none.
export function humanise(name) {
  const text = String(name).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const isString = (value) => typeof value === "string";
const isNonEmptyString = (value) => typeof value === "string" && value.trim() !== "";
const isBoolean = (value) => typeof value === "boolean";
const isStringList = (value) => Array.isArray(value) && value.every(isString);
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
// How a type reads its handles from a node's data: `{field, key, extra}` (see `dataHandles`).
const isHandlesFrom = (value) =>
  isObject(value) &&
  isNonEmptyString(value.field) &&
  (value.key === undefined || value.key === null || isNonEmptyString(value.key)) &&
  (value.extra === undefined || isStringList(value.extra));

// key -> [check, what the key must be, default (given the type name)]
const FIELDS = {
  title: [isNonEmptyString, "a non-empty string", humanise],
  description: [isString, "a string", () => ""],
  icon: [isString, "a string", () => ""],
  colour: [isNonEmptyString, "a non-empty string (a CSS colour)", () => NEUTRAL_COLOUR],
  group: [isNonEmptyString, "a non-empty string", () => DEFAULT_GROUP],
  order: [Number.isFinite, "a number", () => DEFAULT_ORDER],
  summary: [isString, "a string (a template such as {{model}})", () => ""],
  output_fields: [isStringList, "a list of strings", () => []],
  handles: [isStringList, "a list of strings or null", () => null],
  handles_from: [isHandlesFrom, 'an object {field, key, extra} or null', () => null],
  allows_outgoing: [isBoolean, "true or false", () => true],
  // Whether a node of the type may fail for good, and so has an `error` handle (its error path) besides its
  // own. The server always says; an entry that does not gets no error handle, which saving could refuse.
  can_fail: [isBoolean, "true or false", () => false],
  accepts_incoming: [isBoolean, "true or false", () => true],
  data_schema: [isObject, "an object (a JSON Schema)", () => ({ type: "object", properties: {} })],
  side_effects: [isBoolean, "true or false", () => false],
  // Whether the type calls an LLM (its `model` field's placeholder is the default model).
  uses_llm: [isBoolean, "true or false", () => false],
};

// Problems with the form hints of a type's data_schema properties.
function schemaProblems(kind, schema) {
  const problems = [];
  const properties = schema.properties;
  if (properties === undefined) return problems;
  if (!isObject(properties)) return [`${kind}.data_schema.properties: must be an object`];
  for (const [key, property] of Object.entries(properties)) {
    if (!isObject(property)) continue; // `true` and `false` are valid JSON Schemas, with nothing to show
    const where = `${kind}.data_schema.properties.${key}`;
    if (property.title !== undefined && !isNonEmptyString(property.title)) {
      problems.push(`${where}.title: must be a non-empty string`);
    }
    if (property["x-widget"] !== undefined && !X_WIDGETS.has(property["x-widget"])) {
      problems.push(`${where}.x-widget: must be one of ${[...X_WIDGETS].join(", ")}, not ${JSON.stringify(property["x-widget"])}`);
    }
    if (property["x-advanced"] !== undefined && !isBoolean(property["x-advanced"])) {
      problems.push(`${where}.x-advanced: must be true or false`);
    }
  }
  return problems;
}

// One catalogue entry with every key present: `{type, title, ...}`; `problems` receives what was wrong.
export function describeType(kind, entry = {}, problems = []) {
  const spec = { type: kind };
  for (const [key, [valid, what, fallback]] of Object.entries(FIELDS)) {
    const value = entry[key];
    if (value === undefined || value === null) {
      spec[key] = fallback(kind);
    } else if (valid(value)) {
      spec[key] = value;
    } else {
      problems.push(`${kind}.${key}: must be ${what}, not ${JSON.stringify(value)}`);
      spec[key] = fallback(kind);
    }
  }
  problems.push(...schemaProblems(kind, spec.data_schema));
  return spec;
}

// The page's list -> `{catalogue: {type: spec}, problems: [message]}`.
export function normaliseCatalogue(list) {
  const problems = [];
  const catalogue = {};
  if (!Array.isArray(list)) {
    problems.push(`the node type catalogue must be a list, not ${list === null ? "null" : typeof list}`);
    return { catalogue, problems };
  }
  list.forEach((entry, index) => {
    if (!isObject(entry) || !isNonEmptyString(entry.type)) {
      problems.push(`node type catalogue entry ${index}: must be an object with a non-empty "type"`);
      return;
    }
    if (catalogue[entry.type]) problems.push(`node type catalogue: "${entry.type}" is listed twice; the first one is used`);
    else catalogue[entry.type] = describeType(entry.type, entry, problems);
  });
  return { catalogue, problems };
}

// The spec of a node's type; a type the catalogue doesn't know (a graph from elsewhere) gets the defaults.
export function typeSpec(catalogue, kind) {
  return catalogue[kind] || describeType(kind);
}

const byOrderThenTitle = (a, b) => a.order - b.order || a.title.localeCompare(b.title) || a.type.localeCompare(b.type);

// The handles a node of a type with `handles_from` has, given its data (as NodeSpec.handles_for computes them
// on the server): the `key` of each object in the list `field` (each string in it when there is no key), in
// list order, then `extra`; each once. Items of the wrong shape give none (validation reports them). For a type
// without `handles_from`, its fixed `handles` (null: any handle will do).
export function dataHandles(spec, config) {
  const from = spec?.handles_from;
  if (!from) return spec?.handles ?? null;
  const items = isObject(config) && Array.isArray(config[from.field]) ? config[from.field] : [];
  const names = [];
  for (const item of items) {
    const name = from.key ? (isObject(item) ? item[from.key] : undefined) : item;
    if (isNonEmptyString(name) && !names.includes(name)) names.push(name);
  }
  for (const name of from.extra || []) if (!names.includes(name)) names.push(name);
  return names;
}

// The palette: `[{group, types: [spec]}]`, groups in the order of their first type, types by order then title.
export function paletteGroups(catalogue) {
  const groups = new Map();
  for (const spec of Object.values(catalogue).sort(byOrderThenTitle)) {
    if (!groups.has(spec.group)) groups.set(spec.group, []);
    groups.get(spec.group).push(spec);
  }
  return [...groups].map(([group, types]) => ({ group, types }));
}

function shown(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map(shown).filter((item) => item !== "").join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// A node's one-line summary: the type's `summary` template with `{{key}}` (or `{{key.sub}}`) filled from the
// node's configuration. A list reads "a, b"; a missing key is empty; runs of spaces collapse. Values are
// inserted as they are, so a configured `{{input.x}}` shows as written rather than being looked up again.
export function renderSummary(template, config) {
  if (!template) return "";
  const filled = template.replace(/\{\{\s*([^{}\s]+)\s*\}\}/g, (_match, path) => {
    let value = config;
    for (const part of path.split(".")) {
      value = isObject(value) && Object.hasOwn(value, part) ? value[part] : undefined;
    }
    return shown(value);
  });
  return filled.replace(/\s+/g, " ").trim();
}
