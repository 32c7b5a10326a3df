// Unit tests of the canvas's plain logic (no browser): `npm test` (bin/test runs it before pytest).
import { test } from "node:test";
import assert from "node:assert/strict";
import { layout, sourceHandles, toFlow, toGraph } from "../src/flow/graph.js";
import { templateHints } from "../src/editor/fields.js";
import { normaliseCatalogue } from "../src/flow/catalogue.js";

const GRAPH = {
  nodes: [
    { id: "start", type: "start", position: { x: 0, y: 0 }, data: { input_schema: { type: "object", properties: { n: {} } } } },
    { id: "check", type: "if_else", position: { x: 200, y: 0 }, data: { left: "{{input.n}}", operator: ">", right: "1" } },
    { id: "yes", type: "end", position: { x: 400, y: -50 }, data: {} },
    { id: "no", type: "end", position: { x: 400, y: 50 }, data: {} },
  ],
  edges: [
    { id: "e1", source: "start", target: "check" },
    { id: "e2", source: "check", sourceHandle: "true", target: "yes" },
    { id: "e3", source: "check", sourceHandle: "false", target: "no" },
  ],
};

test("a contract graph survives the trip through the canvas unchanged", () => {
  const { nodes, edges } = toFlow(GRAPH);
  assert.deepEqual(toGraph(nodes, edges), GRAPH);
});

test("what React Flow adds (selection, sizes, target handles) is not saved", () => {
  const { nodes, edges } = toFlow(GRAPH);
  const touched = nodes.map((node) => ({ ...node, selected: true, measured: { width: 1, height: 1 } }));
  const wired = edges.map((edge) => ({ ...edge, targetHandle: null, selected: true }));
  assert.deepEqual(toGraph(touched, wired), GRAPH);
});

test("a graph without positions is laid out left to right, true branch above false", () => {
  const bare = { ...GRAPH, nodes: GRAPH.nodes.map(({ position, ...node }) => node) };
  const at = Object.fromEntries(toFlow(bare).nodes.map((node) => [node.id, node.position]));
  assert.ok(at.start.x < at.check.x && at.check.x < at.yes.x);
  assert.ok(at.yes.y < at.no.y, "the true branch is drawn above the false one");
  // Reversing the edges' order does not change which branch is on top.
  const reversed = { ...bare, edges: [...bare.edges].reverse() };
  const again = Object.fromEntries(layout(toFlow(reversed).nodes, toFlow(reversed).edges).map((n) => [n.id, n.position]));
  assert.ok(again.yes.y < again.no.y);
});

test("handles: a type's named ones, none after an end, and any label a free type's edges use", () => {
  const catalogue = { if_else: { handles: ["true", "false"] }, end: { allows_outgoing: false }, agent: { handles: null } };
  assert.deepEqual(sourceHandles("if_else", catalogue.if_else, "check", []), ["true", "false"]);
  assert.deepEqual(sourceHandles("end", catalogue.end, "yes", []), []);
  const edges = [{ source: "a", sourceHandle: "urgent" }, { source: "a", sourceHandle: null }, { source: "b", sourceHandle: "x" }];
  assert.deepEqual(sourceHandles("agent", catalogue.agent, "a", edges), [null, "urgent"]);
});

test("template hints name the run input's fields and the upstream nodes' output fields only", () => {
  const { nodes, edges } = toFlow(GRAPH);
  const { catalogue } = normaliseCatalogue([{ type: "start" }, { type: "if_else", output_fields: ["condition"] }, { type: "end" }]);
  assert.deepEqual(templateHints(nodes, edges, "yes", catalogue), ["{{input.n}}", "{{nodes.check.condition}}"]);
  assert.deepEqual(templateHints(nodes, edges, "check", catalogue), ["{{input.n}}"]);
});

test("template hints: one per output field, and <field> for a type that names none", () => {
  const graph = {
    nodes: [
      { id: "start", type: "start", data: {} },
      { id: "ask", type: "asker", data: {} },
      { id: "plain", type: "plain", data: {} },
      { id: "end", type: "end", data: {} },
    ],
    edges: [
      { source: "start", target: "ask" },
      { source: "ask", target: "plain" },
      { source: "plain", target: "end" },
    ],
  };
  const { nodes, edges } = toFlow(graph);
  const { catalogue } = normaliseCatalogue([{ type: "asker", output_fields: ["answer", "sources"] }, { type: "plain" }]);
  assert.deepEqual(templateHints(nodes, edges, "end", catalogue), [
    "{{input.<field>}}",
    "{{nodes.ask.answer}}",
    "{{nodes.ask.sources}}",
    "{{nodes.plain.<field>}}",
  ]);
});
