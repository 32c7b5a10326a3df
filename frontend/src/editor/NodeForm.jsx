// The side panel: a form for the selected node's configuration, built from its type's JSON Schema.
import { useState } from "react";
import { fieldLabel, isAdvanced, takesTemplateHints, templateHints, widgetFor } from "./fields.js";
import { TypeIcon } from "../flow/nodes.jsx";
import TryIt from "./TryIt.jsx";

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

function numberOrUndefined(text, integer) {
  if (text === "") return undefined;
  const number = integer ? Number.parseInt(text, 10) : Number(text);
  return Number.isFinite(number) ? number : undefined;
}

function Field({ nodeId, name, schema, required, value, tools, hints, onChange }) {
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
    case "json":
      control = <JsonField id={id} value={value} required={required} onChange={onChange} />;
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
      {typeof schema["x-preview"] === "string" && <TryIt id={id} url={schema["x-preview"]} name={name} value={value} />}
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
