// Handles read from a node's data (a switch's cases): derived from the catalogue's `handles_from` as the server
// derives them, redrawn as cases are added, removed and renamed; and the form that edits such a list.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dataHandles, normaliseCatalogue, typeSpec } from "../src/flow/catalogue.js";
import { sourceHandles, staleHandles } from "../src/flow/graph.js";
import { isRowList, moveRow, newRow, widgetFor } from "../src/editor/fields.js";

const CASE_ITEMS = {
  type: "object",
  properties: {
    id: { type: "string", title: "Case (its handle)" },
    operator: { enum: ["==", "!=", "contains", "is_empty"], title: "Operator" },
    right: { type: ["string", "number", "boolean", "null"], "x-widget": "template" },
  },
  required: ["id", "operator"],
};
const SWITCH = {
  type: "switch",
  handles: null,
  handles_from: { field: "cases", key: "id", extra: ["default"] },
  data_schema: { type: "object", properties: { value: {}, cases: { type: "array", minItems: 1, items: CASE_ITEMS } } },
};
const { catalogue, problems } = normaliseCatalogue([SWITCH, { type: "if_else", handles: ["true", "false"] }]);
const spec = typeSpec(catalogue, "switch");

test("the catalogue keeps a type's handles_from and refuses one of the wrong shape", () => {
  assert.deepEqual(problems, []);
  assert.deepEqual(spec.handles_from, SWITCH.handles_from);
  assert.equal(typeSpec(catalogue, "if_else").handles_from, null);
  const bad = normaliseCatalogue([{ type: "odd", handles_from: { field: "", key: 3 } }]);
  assert.equal(bad.catalogue.odd.handles_from, null);
  assert.match(bad.problems[0], /^odd\.handles_from: must be an object \{field, key, extra\} or null/);
});

test("a switch's handles are its case ids in order, then default, each once", () => {
  const config = { cases: [{ id: "refund" }, { id: "billing" }, { id: "refund" }, { id: "" }, "junk", { operator: "==" }] };
  assert.deepEqual(dataHandles(spec, config), ["refund", "billing", "default"]);
  assert.deepEqual(dataHandles(spec, {}), ["default"]);
  assert.deepEqual(dataHandles(spec, { cases: "not a list" }), ["default"]);
  assert.deepEqual(dataHandles({ handles_from: { field: "outs", key: null } }, { outs: ["a", "b", 1] }), ["a", "b"]);
  assert.deepEqual(dataHandles(typeSpec(catalogue, "if_else"), {}), ["true", "false"]);
});

test("the handles drawn follow the data: a case added, renamed or removed", () => {
  const edges = [{ id: "e1", source: "route", sourceHandle: "refund", target: "a" }];
  let config = { cases: [{ id: "refund", operator: "==" }] };
  assert.deepEqual(sourceHandles("switch", spec, "route", edges, config), ["refund", "default"]);
  config = { cases: [...config.cases, { id: "billing", operator: "==" }] };
  assert.deepEqual(sourceHandles("switch", spec, "route", edges, config), ["refund", "billing", "default"]);
  // Renamed: the edge still leaves from "refund", which is drawn (and marked) until it is reconnected.
  config = { cases: [{ id: "refunds", operator: "==" }, { id: "billing", operator: "==" }] };
  const handles = sourceHandles("switch", spec, "route", edges, config);
  assert.deepEqual(handles, ["refunds", "billing", "default", "refund"]);
  assert.deepEqual(staleHandles(spec, config, handles), ["refund"]);
  // Removed, with no edge left on it: gone.
  config = { cases: [{ id: "billing", operator: "==" }] };
  assert.deepEqual(sourceHandles("switch", spec, "route", [], config), ["billing", "default"]);
  assert.deepEqual(staleHandles(spec, config, ["billing", "default"]), []);
  // Other types are unchanged: fixed handles, or one free handle plus the labels in use.
  assert.deepEqual(sourceHandles("if_else", typeSpec(catalogue, "if_else"), "c", [], {}), ["true", "false"]);
  assert.deepEqual(staleHandles(typeSpec(catalogue, "if_else"), {}, ["true", "false"]), []);
});

test("a list of objects is edited as rows; a list of strings or of anything else is not", () => {
  assert.equal(widgetFor(SWITCH.data_schema.properties.cases), "rows");
  assert.equal(isRowList({ type: "array", items: { type: "string" } }), false);
  assert.equal(widgetFor({ type: "array", items: { type: "object" } }), "json");
  assert.equal(widgetFor({ type: "array", items: { type: "integer" } }), "json");
});

test("a new row picks each required option and an unused handle name; rows move up and down", () => {
  const rows = [{ id: "case_2", operator: "==" }];
  assert.deepEqual(newRow(CASE_ITEMS, rows, "id", "case"), { id: "case_3", operator: "==" });
  assert.deepEqual(newRow(CASE_ITEMS, [], "id", "case"), { id: "case_1", operator: "==" });
  assert.deepEqual(newRow(CASE_ITEMS, [], null), { operator: "==" });
  const three = [{ id: "a" }, { id: "b" }, { id: "c" }];
  assert.deepEqual(moveRow(three, 2, -1).map((row) => row.id), ["a", "c", "b"]);
  assert.equal(moveRow(three, 0, -1), three);
  assert.equal(moveRow(three, 2, 1), three);
});
