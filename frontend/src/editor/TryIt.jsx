// "Try it" under a field whose schema names a preview endpoint (`x-preview`, e.g. the transform node's
// expression): posts the field's value with a sample input and shows the answer, `{ok, result}` or
// `{ok: false, error, position}`. Nothing here is saved with the node.
import { useState } from "react";
import { describeAnswer, parseSample } from "./tryit.js";

function csrfToken() {
  const root = document.querySelector("[data-csrf]");
  return root?.dataset.csrf || document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)?.[1] || "";
}

export default function TryIt({ id, url, name, value }) {
  const [sample, setSample] = useState("{}");
  const [answer, setAnswer] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    const parsed = parseSample(sample);
    if (parsed.error) {
      setAnswer({ ok: false, text: parsed.error });
      return;
    }
    setBusy(true);
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ [name]: value ?? "", input: parsed.value }),
      });
      const body = await response.json().catch(() => null);
      setAnswer(describeAnswer(response.status, body));
    } catch (exc) {
      setAnswer({ ok: false, text: `The preview failed: ${exc.message}` });
    } finally {
      setBusy(false);
    }
  };
  return (
    <details className="fn-try-it">
      <summary>Try it</summary>
      <label htmlFor={`${id}-sample`}>Sample input (JSON)</label>
      <textarea
        id={`${id}-sample`}
        className="code"
        rows={4}
        spellCheck={false}
        value={sample}
        onChange={(event) => setSample(event.target.value)}
      />
      <p>
        <button type="button" onClick={run} disabled={busy || !value}>
          {busy ? "Trying…" : "Try it"}
        </button>
      </p>
      {answer && (
        <pre className={answer.ok ? "fn-try-result" : "field-error"} role={answer.ok ? "status" : "alert"}>
          {answer.text}
        </pre>
      )}
    </details>
  );
}
