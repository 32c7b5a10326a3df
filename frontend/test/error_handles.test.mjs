// A node's error path: every type the catalogue says can fail gets an `error` handle, last, drawn as an error
// handle, besides its own handles (fixed, read from its data, or any); a type that cannot fail gets none.
import { test } from "node:test";
import assert from "node:assert/strict";
import { normaliseCatalogue, typeSpec } from "../src/flow/catalogue.js";
import { ERROR_HANDLE, handleClass, handleTitle, sourceHandles, staleHandles } from "../src/flow/graph.js";

const { catalogue, problems } = normaliseCatalogue([
  { type: "tool", handles: ["success"], can_fail: true },
  { type: "agent", handles: null, can_fail: true },
  { type: "if_else", handles: ["true", "false"], can_fail: false },
  { type: "start", handles: null, can_fail: false },
  { type: "end", handles: null, allows_outgoing: false, can_fail: false },
  { type: "switch", handles: null, handles_from: { field: "cases", key: "id", extra: ["default"] }, can_fail: false },
  { type: "picker", handles: null, handles_from: { field: "outs", key: null, extra: [] }, can_fail: true },
  { type: "old_server" },
]);
const spec = (kind) => typeSpec(catalogue, kind);

test("the catalogue keeps can_fail; an entry without it gets no error handle", () => {
  assert.deepEqual(problems, []);
  assert.equal(spec("tool").can_fail, true);
  assert.equal(spec("if_else").can_fail, false);
  assert.equal(spec("old_server").can_fail, false);
  const bad = normaliseCatalogue([{ type: "odd", can_fail: "yes" }]);
  assert.equal(bad.catalogue.odd.can_fail, false);
  assert.match(bad.problems[0], /^odd\.can_fail: must be true or false/);
});

test("a type with fixed handles that can fail draws them, then error", () => {
  assert.equal(ERROR_HANDLE, "error");
  assert.deepEqual(sourceHandles("tool", spec("tool"), "t", [], {}), ["success", "error"]);
  // A catalogue that still lists error among the tool's own handles draws it once.
  const listed = { ...spec("tool"), handles: ["success", "error"] };
  assert.deepEqual(sourceHandles("tool", listed, "t", [], {}), ["success", "error"]);
});

test("a type that takes any handle and can fail draws its free handle, the labels in use, then error", () => {
  const edges = [
    { id: "e1", source: "a", target: "x" },
    { id: "e2", source: "a", sourceHandle: "error", target: "y" },
    { id: "e3", source: "a", sourceHandle: "later", target: "z" },
  ];
  assert.deepEqual(sourceHandles("agent", spec("agent"), "a", [], {}), [null, "error"]);
  assert.deepEqual(sourceHandles("agent", spec("agent"), "a", edges, {}), [null, "later", "error"]);
});

test("types that cannot fail draw no error handle; an error edge left on one is drawn as a plain label", () => {
  assert.deepEqual(sourceHandles("if_else", spec("if_else"), "c", [], {}), ["true", "false"]);
  assert.deepEqual(sourceHandles("end", spec("end"), "e", [], {}), []);
  const edges = [{ id: "e1", source: "s", sourceHandle: "error", target: "x" }];
  assert.deepEqual(sourceHandles("start", spec("start"), "s", [], {}), [null]);
  assert.deepEqual(sourceHandles("start", spec("start"), "s", edges, {}), [null, "error"]);
  assert.equal(handleClass("error", [], spec("start")), "fn-handle fn-handle-error");
});

test("handles read from data keep the error path out of the stale ones", () => {
  const config = { outs: ["a", "b"] };
  const edges = [{ id: "e1", source: "p", sourceHandle: "error", target: "x" }];
  const handles = sourceHandles("picker", spec("picker"), "p", edges, config);
  assert.deepEqual(handles, ["a", "b", "error"]);
  assert.deepEqual(staleHandles(spec("picker"), config, handles), []);
  // A switch cannot fail: an edge still on a case named "error" that was removed is stale like any other.
  const switchHandles = sourceHandles("switch", spec("switch"), "r", [{ ...edges[0], source: "r" }], { cases: [] });
  assert.deepEqual(switchHandles, ["default", "error"]);
  assert.deepEqual(staleHandles(spec("switch"), { cases: [] }, switchHandles), ["error"]);
});

test("the error handle is drawn and titled as the node's error path", () => {
  assert.equal(handleClass("error", [], spec("tool")), "fn-handle fn-handle-error fn-handle-error-path");
  assert.match(handleTitle("error", [], spec("tool")), /^error: taken when the node fails for good/);
  assert.equal(handleClass("success", [], spec("tool")), "fn-handle fn-handle-success");
  assert.equal(handleTitle("success", [], spec("tool")), "success: drag to connect");
  assert.equal(handleClass(null, [], spec("agent")), "fn-handle");
  assert.equal(handleTitle(null, [], spec("agent")), "drag to connect");
  assert.equal(handleClass("refund", ["refund"], spec("switch")), "fn-handle fn-handle-refund fn-handle-stale");
});
