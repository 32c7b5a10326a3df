// The side panel: a form for the selected node's configuration, built from its type's JSON Schema.
import { useEffect, useState } from "react";
import { fieldLabel, isAdvanced, moveRow, newRow, takesTemplateHints, templateHints, widgetFor } from "./fields.js";
import { TypeIcon } from "../flow/nodes.jsx";
import TryIt from "./TryIt.jsx";
import { WORKFLOWS_URL, inputHint, workflowOptions } from "./workflows.js";

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

function JsonField({ id, value, required, onChange }) {
  const [text, setText] = useState(() => (value === undefined ? "" : JSON.stringify(value, null, 2)));
  const [error, setError] = useState("");
  const update = (next) => {
    setText(next);
    if (next.trim() === "") {
      setError("");
      onChange(undefined);
      return;
    }
    try {
      onChange(JSON.parse(next));
      setError("");
    } catch (exc) {
      // Kept as typed and not applied: the node keeps its last valid value until the JSON parses.
      setError(`Not valid JSON yet: ${exc.message}`);
    }
  };
  return (
    <>
      <textarea
        id={id}
        className="code"
        rows={6}
        spellCheck={false}
        value={text}
        required={required}
        aria-invalid={error ? "true" : undefined}
        aria-describedby={error ? `${id}-error` : undefined}
        onChange={(event) => update(event.target.value)}
      />
      {error && (
        <p className="field-error" id={`${id}-error`} role="alert">
          {error}
        </p>
      )}
    </>
  );
}

function ListField({ id, value, onChange }) {
  const [text, setText] = useState(() => (Array.isArray(value) ? value.join(", ") : ""));
  return (
    <input
      id={id}
      type="text"
      value={text}
      onChange={(event) => {
        setText(event.target.value);
        const items = event.target.value
          .split(",")
          .map((item) => item.trim())
          .filter(Boolean);
        onChange(items.length ? items : undefined);
      }}
    />
  );
}

function ToolsField({ id, value, tools, onChange }) {
  const chosen = new Set(Array.isArray(value) ? value : []);
  const names = [...new Set([...tools.map((tool) => tool.name), ...chosen])].sort();
  if (!names.length) return <p className="hint">No tools registered yet: add one in the admin or the API.</p>;
  return (
    <fieldset id={id} className="fn-checks">
      {names.map((name) => {
        const tool = tools.find((item) => item.name === name);
        return (
          <label key={name} title={tool?.description || "not in the registry"}>
            <input
              type="checkbox"
              checked={chosen.has(name)}
              onChange={(event) => {
                const next = new Set(chosen);
                if (event.target.checked) next.add(name);
                else next.delete(name);
                onChange(next.size ? [...next].sort() : undefined);
              }}
            />{" "}
            {name}
            {!tool && <span className="field-error"> (not registered)</span>}
          </label>
        );
      })}
    </fieldset>
  );
}

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

// The workflows the user may run, read from the API once per page.
let listed = null;
function listWorkflows() {
  listed = listed || getJson(WORKFLOWS_URL).then((body) => body.results || []);
  listed.catch(() => {
    listed = null; // try again next time
  });
  return listed;
}

function editedWorkflowId() {
  try {
    return JSON.parse(document.getElementById("editor-workflow")?.textContent || "null")?.id ?? null;
  } catch {
    return null;
  }
}

// A saved workflow to run (a subworkflow's `workflow`): a select of the user's workflows, and under it what the
// chosen one takes as input (its start node's input_schema).
function WorkflowField({ id, value, onChange }) {
  const [workflows, setWorkflows] = useState(null);
  const [error, setError] = useState("");
  const [hint, setHint] = useState("");
  useEffect(() => {
    listWorkflows().then(setWorkflows, (exc) => setError(`Your workflows could not be listed: ${exc.message}`));
  }, []);
  useEffect(() => {
    setHint("");
    if (!Number.isInteger(value)) return undefined;
    let live = true;
    getJson(`/api/workflows/${value}/`).then(
      (workflow) => live && setHint(inputHint(workflow)),
      () => live && setHint("This workflow cannot be read: it was deleted, or it is not yours."),
    );
    return () => {
      live = false;
    };
  }, [value]);
  const options = workflowOptions(workflows, editedWorkflowId(), value);
  return (
    <>
      <select id={id} value={value ?? ""} onChange={(event) => onChange(event.target.value ? Number(event.target.value) : undefined)}>
        <option value="">{workflows === null && !error ? "loading…" : "choose a workflow…"}</option>
        {options.map((option) => (
          <option key={option.id} value={option.id}>
            {option.label}
          </option>
        ))}
      </select>
      {error && <p className="field-error" role="alert">{error}</p>}
      {hint && <p className="hint fn-workflow-input">{hint}</p>}
    </>
  );
}

// A list of objects (a switch's cases), one small form per row: add, remove, move up and down. When the rows
// name the node's handles (`handles_from`), adding a row adds its handle on the canvas at once.
function RowsField({ id, schema, value, handlesFrom, fieldName, onChange }) {
  const rows = Array.isArray(value) ? value : [];
  const items = schema.items;
  const properties = items.properties;
  const required = new Set(items.required || []);
  const handleKey = handlesFrom && handlesFrom.field === fieldName ? handlesFrom.key : null;
  const noun = fieldName.endsWith("s") ? fieldName.slice(0, -1) : "item";
  const min = Number.isInteger(schema.minItems) ? schema.minItems : 0;
  const max = Number.isInteger(schema.maxItems) ? schema.maxItems : Infinity;
  const setRows = (next) => onChange(next.length ? next : undefined);
  const setCell = (index, key, cell) => {
    const row = { ...rows[index] };
    if (cell === undefined) delete row[key];
    else row[key] = cell;
    setRows(rows.map((item, at) => (at === index ? row : item)));
  };
  return (
    <div id={id} className="fn-rows">
      {rows.map((row, index) => {
        const item = row && typeof row === "object" && !Array.isArray(row) ? row : {};
        const name = handleKey && typeof item[handleKey] === "string" && item[handleKey] ? item[handleKey] : `${index + 1}`;
        return (
          <fieldset key={index} className="fn-row" data-row={index}>
            <legend>
              {noun} {name}
            </legend>
            {Object.entries(properties).map(([key, property]) => {
              const cellId = `${id}-${index}-${key}`;
              const cellValue = item[key];
              return (
                <div key={key} className="fn-row-cell">
                  <label htmlFor={cellId}>
                    {fieldLabel(key, property)}
                    {required.has(key) && <span aria-hidden="true"> *</span>}
                  </label>
                  {Array.isArray(property?.enum) ? (
                    <select id={cellId} value={cellValue ?? ""} onChange={(event) => setCell(index, key, event.target.value || undefined)}>
                      {(!required.has(key) || cellValue === undefined) && <option value="">—</option>}
                      {property.enum.map((option) => (
                        <option key={String(option)} value={option}>
                          {String(option)}
                        </option>
                      ))}
                    </select>
                  ) : (
                    <input
                      id={cellId}
                      type="text"
                      value={cellValue === undefined || cellValue === null ? "" : String(cellValue)}
                      onChange={(event) => setCell(index, key, event.target.value === "" ? undefined : event.target.value)}
                    />
                  )}
                </div>
              );
            })}
            <p className="fn-row-actions">
              <button type="button" aria-label={`Move ${noun} ${name} up`} disabled={index === 0} onClick={() => setRows(moveRow(rows, index, -1))}>
                ↑
              </button>
              <button
                type="button"
                aria-label={`Move ${noun} ${name} down`}
                disabled={index === rows.length - 1}
                onClick={() => setRows(moveRow(rows, index, 1))}
              >
                ↓
              </button>
              <button
                type="button"
                className="danger-button"
                disabled={rows.length <= min}
                onClick={() => setRows(rows.filter((_, at) => at !== index))}
              >
                Remove {noun}
              </button>
            </p>
          </fieldset>
        );
      })}
      <button type="button" disabled={rows.length >= max} onClick={() => setRows([...rows, newRow(items, rows, handleKey, noun)])}>
        Add {noun}
      </button>
    </div>
  );
}

function numberOrUndefined(text, integer) {
  if (text === "") return undefined;
  const number = integer ? Number.parseInt(text, 10) : Number(text);
  return Number.isFinite(number) ? number : undefined;
}

function Field({ nodeId, name, schema, required, value, tools, hints, handlesFrom, onChange }) {
  const widget = widgetFor(schema);
  const id = `field-${nodeId}-${name}`;
  let control;
  switch (widget) {
    case "select":
      control = (
        <select id={id} value={value ?? ""} onChange={(event) => onChange(event.target.value || undefined)}>
          {!required && <option value="">—</option>}
          {required && value === undefined && <option value="">choose…</option>}
          {schema.enum.map((option) => (
            <option key={String(option)} value={option}>
              {String(option)}
            </option>
          ))}
        </select>
      );
      break;
    case "tool": {
      const names = [...new Set([...tools.map((tool) => tool.name), ...(value ? [value] : [])])].sort();
      control = (
        <select id={id} value={value ?? ""} onChange={(event) => onChange(event.target.value || undefined)}>
          <option value="">choose a tool…</option>
          {names.map((toolName) => (
            <option key={toolName} value={toolName}>
              {toolName}
            </option>
          ))}
        </select>
      );
      break;
    }
    case "tools":
      control = <ToolsField id={id} value={value} tools={tools} onChange={onChange} />;
      break;
    case "workflow":
      control = <WorkflowField id={id} value={value} onChange={onChange} />;
      break;
    case "json":
      control = <JsonField id={id} value={value} required={required} onChange={onChange} />;
      break;
    case "rows":
      control = (
        <RowsField id={id} schema={schema} value={value} handlesFrom={handlesFrom} fieldName={name} onChange={onChange} />
      );
      break;
    case "list":
      control = <ListField id={id} value={value} onChange={onChange} />;
      break;
    case "checkbox":
      control = (
        <input id={id} type="checkbox" checked={!!value} onChange={(event) => onChange(event.target.checked || undefined)} />
      );
      break;
    case "integer":
    case "number":
      control = (
        <input
          id={id}
          type="number"
          step={widget === "integer" ? 1 : "any"}
          min={schema.minimum}
          max={schema.maximum}
          value={value ?? ""}
          onChange={(event) => onChange(numberOrUndefined(event.target.value, widget === "integer"))}
        />
      );
      break;
    case "textarea":
      control = (
        <textarea id={id} rows={4} value={value ?? ""} onChange={(event) => onChange(event.target.value || undefined)} />
      );
      break;
    default:
      control = (
        <input
          id={id}
          type="text"
          placeholder={typeof schema["x-placeholder"] === "string" ? schema["x-placeholder"] : undefined}
          value={value === undefined || value === null ? "" : String(value)}
          onChange={(event) => onChange(event.target.value === "" ? undefined : event.target.value)}
        />
      );
  }
  const showHints = takesTemplateHints(widget);
  return (
    <div className="field">
      <label htmlFor={id}>
        {fieldLabel(name, schema)}
        {required && <span aria-hidden="true"> *</span>}
      </label>
      {control}
      {schema.description && <p className="hint">{schema.description}</p>}
      {typeof schema["x-preview"] === "string" && <TryIt id={id} url={schema["x-preview"]} name={name} value={value} />}
      {showHints && hints.length > 0 && (
        <p className="hint fn-hints">
          Templates:{" "}
          {hints.map((hint) => (
            <button
              type="button"
              key={hint}
              className="fn-chip"
              title="append to this field"
              onClick={() => onChange(`${value ?? ""}${hint}`)}
            >
              {hint}
            </button>
          ))}
        </p>
      )}
    </div>
  );
}

export default function NodeForm({ node, spec, catalogue, nodes, edges, tools, issues, onData, onRename, onDelete }) {
  const [idText, setIdText] = useState(node.id);
  const [idError, setIdError] = useState("");
  const schema = spec.data_schema;
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const keys = Object.keys(properties);
  const own = keys.filter((key) => !isAdvanced(properties[key]));
  const advanced = keys.filter((key) => isAdvanced(properties[key]));
  const config = node.data.config || {};
  const hints = templateHints(nodes, edges, node.id, catalogue);
  const set = (key) => (value) => {
    const next = { ...config };
    if (value === undefined) delete next[key];
    else next[key] = value;
    // Keys that held only for the previous value (a subworkflow's pinned version, when the workflow changes).
    const clears = properties[key]?.["x-clears"];
    if (Array.isArray(clears) && value !== config[key]) for (const other of clears) delete next[other];
    onData(node.id, next, key);
  };
  const rename = () => {
    if (idText === node.id) return;
    if (!ID_PATTERN.test(idText)) {
      setIdError("1 to 64 letters, digits, _ or -");
    } else if (nodes.some((other) => other.id === idText)) {
      setIdError(`another node is already called ${idText}`);
    } else {
      setIdError("");
      onRename(node.id, idText);
    }
  };
  const field = (key) => (
    <Field
      key={key}
      nodeId={node.id}
      name={key}
      schema={properties[key] && typeof properties[key] === "object" ? properties[key] : {}}
      required={required.has(key)}
      value={config[key]}
      tools={tools}
      hints={hints}
      handlesFrom={spec.handles_from}
      onChange={set(key)}
    />
  );
  return (
    <form className="fn-node-form stack" onSubmit={(event) => event.preventDefault()} aria-label={`Node ${node.id}`}>
      <h2>
        <TypeIcon icon={spec.icon} />
        {spec.title} <code>{node.id}</code>
      </h2>
      {issues.length > 0 && (
        <ul className="notice notice-error fn-form-issues" role="alert">
          {issues.map((issue, index) => (
            <li key={index}>{issue}</li>
          ))}
        </ul>
      )}
      <div className="field">
        <label htmlFor={`node-id-${node.id}`}>Id</label>
        <input
          id={`node-id-${node.id}`}
          type="text"
          value={idText}
          onChange={(event) => setIdText(event.target.value)}
          onBlur={rename}
          onKeyDown={(event) => event.key === "Enter" && rename()}
          aria-invalid={idError ? "true" : undefined}
        />
        {idError && <p className="field-error" role="alert">{idError}</p>}
      </div>
      {own.map(field)}
      {own.length === 0 && <p className="muted small">This node type has nothing to configure.</p>}
      {advanced.length > 0 && (
        <details>
          <summary>Advanced</summary>
          {advanced.map(field)}
        </details>
      )}
      <p>
        <button type="button" className="danger-button" onClick={() => onDelete(node.id)}>
          Delete node
        </button>
      </p>
    </form>
  );
}
