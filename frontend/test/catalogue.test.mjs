// The node type catalogue: defaults for what a type leaves out, the palette, summary lines and form widgets.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_GROUP,
  DEFAULT_ORDER,
  NEUTRAL_COLOUR,
  normaliseCatalogue,
  paletteGroups,
  renderSummary,
  typeSpec,
} from "../src/flow/catalogue.js";
import { fieldLabel, isAdvanced, takesTemplateHints, widgetFor } from "../src/editor/fields.js";

// A made-up type that says everything about itself, and one that says nothing but its name and schema.
const FULL = {
  type: "ticket_triage",
  title: "Ticket triage",
  description: "Sorts a support ticket into a queue.",
  icon: "✉",
  colour: "#1098ad",
  group: "Support",
  order: 20,
  summary: "{{queue}} via {{model}} ({{tags}})",
  output_fields: ["queue", "confidence"],
  handles: ["urgent", "normal"],
  handles_from: null,
  allows_outgoing: true,
  can_fail: true,
  accepts_incoming: false,
  data_schema: {
    type: "object",
    properties: {
      label: { type: "string", title: "Label", "x-advanced": true },
      retries: { type: "integer", "x-advanced": true },
      model: { type: "string", title: "Model" },
      brief: { type: "string", title: "What to look for", "x-widget": "textarea" },
      subject: { type: "string", "x-widget": "template" },
      tools: { type: "array", items: { type: "string" }, "x-widget": "tools" },
      fallback_tool: { type: "string", "x-widget": "tool" },
      tags: { type: "array", items: { type: "string" } },
    },
    required: ["model"],
  },
  side_effects: true,
  uses_llm: true,
};
const BARE = {
  type: "queue_lookup",
  data_schema: {
    type: "object",
    properties: {
      label: { type: "string" },
      timeout_seconds: { type: "number" },
      queue_name: { type: "string" },
      priority: { enum: ["low", "high"] },
      payload: { type: ["object", "null"] },
      ids: { type: "array", items: { type: "integer" } },
      names: { type: "array", items: { type: "string" } },
      dry_run: { type: "boolean" },
      limit: { type: "integer" },
      anything: {},
    },
  },
};

test("a type that says everything keeps it all", () => {
  const { catalogue, problems } = normaliseCatalogue([FULL]);
  assert.deepEqual(problems, []);
  assert.deepEqual(catalogue.ticket_triage, FULL);
});

test("a type that says nothing gets neutral defaults", () => {
  const { catalogue, problems } = normaliseCatalogue([{ type: "user_approval" }, BARE]);
  assert.deepEqual(problems, []);
  assert.deepEqual(catalogue.user_approval, {
    type: "user_approval",
    title: "User approval",
    description: "",
    icon: "",
    colour: NEUTRAL_COLOUR,
    group: DEFAULT_GROUP,
    order: DEFAULT_ORDER,
    summary: "",
    output_fields: [],
    handles: null,
    handles_from: null,
    allows_outgoing: true,
    can_fail: false,
    accepts_incoming: true,
    data_schema: { type: "object", properties: {} },
    side_effects: false,
    uses_llm: false,
  });
  assert.equal(catalogue.queue_lookup.title, "Queue lookup");
  assert.equal(catalogue.queue_lookup.data_schema, BARE.data_schema);
  // A node whose type the page does not list (a graph from elsewhere) draws with the same defaults.
  assert.equal(typeSpec(catalogue, "if_else").title, "If else");
  assert.equal(typeSpec(catalogue, "if_else").accepts_incoming, true);
});

test("what is wrong in the catalogue is named, and the default used instead", () => {
  const { catalogue, problems } = normaliseCatalogue([
    { type: "odd", order: "30", colour: "", handles: "true,false", accepts_incoming: "no" },
    { type: "odd_form", data_schema: { properties: { a: { "x-widget": "slider" }, b: { "x-advanced": "yes" } } } },
    { title: "No type" },
    { type: "odd" },
  ]);
  assert.deepEqual(problems, [
    'odd.colour: must be a non-empty string (a CSS colour), not ""',
    'odd.order: must be a number, not "30"',
    'odd.handles: must be a list of strings or null, not "true,false"',
    'odd.accepts_incoming: must be true or false, not "no"',
    'odd_form.data_schema.properties.a.x-widget: must be one of textarea, template, tools, tool, workflow, not "slider"',
    "odd_form.data_schema.properties.b.x-advanced: must be true or false",
    'node type catalogue entry 2: must be an object with a non-empty "type"',
    'node type catalogue: "odd" is listed twice; the first one is used',
  ]);
  assert.equal(catalogue.odd.order, DEFAULT_ORDER);
  assert.equal(catalogue.odd.colour, NEUTRAL_COLOUR);
  assert.equal(catalogue.odd.handles, null);
  assert.equal(catalogue.odd.accepts_incoming, true);
  assert.deepEqual(Object.keys(catalogue), ["odd", "odd_form"]);
  assert.deepEqual(normaliseCatalogue({ odd: {} }).problems, ["the node type catalogue must be a list, not object"]);
});

test("palette: groups in the order of their lowest order, types by order then title", () => {
  const { catalogue } = normaliseCatalogue([
    { type: "join", title: "Join", group: "Logic", order: 41 },
    { type: "end", title: "End", group: "Basics", order: 2 },
    { type: "if_else", title: "If / else", group: "Logic", order: 30 },
    { type: "fork", title: "Fork", group: "Logic", order: 40 },
    { type: "start", title: "Start", group: "Basics", order: 1 },
    { type: "zebra", title: "Zebra", group: "AI", order: 10 },
    { type: "agent", title: "Agent", group: "AI", order: 10 },
    { type: "queue_lookup" },
    { type: "another_free_one" },
  ]);
  const groups = paletteGroups(catalogue).map(({ group, types }) => [group, types.map((spec) => spec.type)]);
  assert.deepEqual(groups, [
    ["Basics", ["start", "end"]],
    ["AI", ["agent", "zebra"]],
    ["Logic", ["if_else", "fork", "join"]],
    // Types that name no group or order come last, by title.
    [DEFAULT_GROUP, ["another_free_one", "queue_lookup"]],
  ]);
});

test("palette: a group placed by its lowest order even when its other types sort later", () => {
  const { catalogue } = normaliseCatalogue([
    { type: "a", group: "Late", order: 900 },
    { type: "b", group: "Early", order: 5 },
    { type: "c", group: "Late", order: 1 },
  ]);
  assert.deepEqual(paletteGroups(catalogue).map(({ group }) => group), ["Late", "Early"]);
});

test("summary: the template filled from the node's configuration", () => {
  const template = "{{left}} {{operator}} {{right}}";
  assert.equal(renderSummary(template, { left: "{{input.n}}", operator: ">", right: 100 }), "{{input.n}} > 100");
  // A missing key is empty and the spaces around it collapse.
  assert.equal(renderSummary(template, { left: "a", right: "b" }), "a b");
  assert.equal(renderSummary(template, {}), "");
  assert.equal(renderSummary("{{ assignees }}", { assignees: ["ann", "bob"] }), "ann, bob");
  assert.equal(renderSummary("{{model}}", { model: null }), "");
  assert.equal(renderSummary("{{flag}} {{n}}", { flag: false, n: 0 }), "false 0");
  assert.equal(renderSummary("{{retry.max}} {{output}}", { retry: { max: 3 }, output: { a: 1 } }), '3 {"a":1}');
  assert.equal(renderSummary("", { model: "x" }), "");
  assert.equal(renderSummary("via  {{model}}\n", { model: "m" }), "via m");
  assert.equal(renderSummary("{{toString}}", {}), "");
});

test("form: widgets, labels and the Advanced section from the full type's metadata", () => {
  const { catalogue } = normaliseCatalogue([FULL]);
  const properties = catalogue.ticket_triage.data_schema.properties;
  const widgets = Object.fromEntries(Object.entries(properties).map(([key, schema]) => [key, widgetFor(schema)]));
  assert.deepEqual(widgets, {
    label: "text",
    retries: "integer",
    model: "text",
    brief: "textarea",
    subject: "template",
    tools: "tools",
    fallback_tool: "tool",
    tags: "list",
  });
  assert.equal(fieldLabel("brief", properties.brief), "What to look for");
  assert.equal(fieldLabel("fallback_tool", properties.fallback_tool), "Fallback tool");
  const advanced = Object.keys(properties).filter((key) => isAdvanced(properties[key]));
  assert.deepEqual(advanced, ["label", "retries"]);
  assert.ok(takesTemplateHints(widgets.brief) && takesTemplateHints(widgets.subject));
  assert.ok(!takesTemplateHints(widgets.model));
});

test("form: a type without metadata gets widgets from its JSON Schema alone, humanised labels, nothing advanced", () => {
  const { catalogue } = normaliseCatalogue([BARE]);
  const properties = catalogue.queue_lookup.data_schema.properties;
  const widgets = Object.fromEntries(Object.entries(properties).map(([key, schema]) => [key, widgetFor(schema)]));
  assert.deepEqual(widgets, {
    label: "text",
    timeout_seconds: "number",
    queue_name: "text",
    priority: "select",
    payload: "json",
    ids: "json",
    names: "list",
    dry_run: "checkbox",
    limit: "integer",
    anything: "template",
  });
  assert.equal(fieldLabel("timeout_seconds", properties.timeout_seconds), "Timeout seconds");
  assert.equal(fieldLabel("queue_name", properties.queue_name), "Queue name");
  assert.deepEqual(Object.keys(properties).filter((key) => isAdvanced(properties[key])), []);
});
