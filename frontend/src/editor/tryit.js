// What the "Try it" panel (TryIt.jsx) reads and shows: plain functions, tested without a browser.

// The sample input as an object, or the reason it is not one.
export function parseSample(text) {
  let value;
  try {
    value = JSON.parse(text.trim() === "" ? "{}" : text);
  } catch (exc) {
    return { error: `The sample input is not valid JSON: ${exc.message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { error: "The sample input must be a JSON object." };
  }
  return { value };
}

// What to show for the endpoint's answer (or a failed request).
export function describeAnswer(status, body) {
  if (status === 200 && body?.ok === true) return { ok: true, text: JSON.stringify(body.result, null, 2) };
  if (status === 200 && body?.ok === false) {
    const where = Number.isInteger(body.position) ? ` (position ${body.position})` : "";
    return { ok: false, text: `${body.error}${where}` };
  }
  if (status === 429) return { ok: false, text: "Too many tries: wait a moment and try again." };
  const detail = body && typeof body === "object" ? body.detail || JSON.stringify(body) : "";
  return { ok: false, text: `The preview failed (HTTP ${status})${detail ? `: ${detail}` : ""}` };
}
