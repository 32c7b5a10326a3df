// The "Try it" panel's sample input and how it shows the preview endpoint's answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeAnswer, parseSample } from "../src/editor/tryit.js";

test("the sample input is a JSON object, empty meaning {}", () => {
  assert.deepEqual(parseSample(""), { value: {} });
  assert.deepEqual(parseSample('{"a": [1]}'), { value: { a: [1] } });
  assert.match(parseSample("[1]").error, /must be a JSON object/);
  assert.match(parseSample("null").error, /must be a JSON object/);
  assert.match(parseSample("{a").error, /not valid JSON/);
});

test("an answer shows the result, or the error with its position", () => {
  assert.deepEqual(describeAnswer(200, { ok: true, result: { n: 1 } }), { ok: true, text: '{\n  "n": 1\n}' });
  assert.deepEqual(describeAnswer(200, { ok: false, error: "JSONata S0203: Expected }", position: 6 }), {
    ok: false,
    text: "JSONata S0203: Expected } (position 6)",
  });
  assert.deepEqual(describeAnswer(200, { ok: false, error: "too long", position: null }), { ok: false, text: "too long" });
  assert.match(describeAnswer(429, { detail: "throttled" }).text, /Too many tries/);
  assert.equal(describeAnswer(400, { expression: ["Must be a string."] }).ok, false);
  assert.match(describeAnswer(401, { detail: "Not signed in." }).text, /HTTP 401\): Not signed in\./);
});
