// The subworkflow node's workflow picker: its options and the chosen workflow's input hint.
import { test } from "node:test";
import assert from "node:assert/strict";
import { inputHint, workflowOptions } from "../src/editor/workflows.js";

test("the options list the user's workflows but the one being edited, and keep a chosen one not listed", () => {
  const listed = [
    { id: 1, name: "Parent", version: 3 },
    { id: 2, name: "Child", version: 1 },
  ];
  assert.deepEqual(workflowOptions(listed, 1, undefined), [{ id: 2, label: "Child (#2, v1)", missing: false }]);
  assert.deepEqual(workflowOptions(listed, 1, 9).at(-1), { id: 9, label: "#9 (not in your workflows)", missing: true });
  assert.deepEqual(workflowOptions(null, null, undefined), []);
});

test("the hint names the chosen workflow's input fields, required ones marked", () => {
  const workflow = {
    graph: {
      nodes: [
        { id: "s", type: "start", data: { input_schema: { properties: { n: { type: "integer" }, note: {} }, required: ["n"] } } },
      ],
    },
  };
  assert.equal(inputHint(workflow), "Its input: n*: integer, note (* required).");
  assert.match(inputHint({ graph: { nodes: [{ id: "s", type: "start", data: {} }] } }), /any object/);
  assert.match(inputHint(null), /any object/);
});
