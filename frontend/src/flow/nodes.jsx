// The one node renderer for every canvas: the contract's type is in `data.kind`; its title, icon, colour,
// summary line and handles come from the node type catalogue the page embeds (so a deployment's own node
// types draw like the built-in ones).
import { createContext, memo, useContext, useEffect, useRef } from "react";
import { Handle, Position, useEdges, useUpdateNodeInternals } from "@xyflow/react";
import { handleClass, handleTitle, sourceHandles, staleHandles } from "./graph.js";
import { renderSummary, typeSpec } from "./catalogue.js";

export const CatalogueContext = createContext({});

const STATUS_TEXT = {
  pending: "waiting for branches",
  queued: "queued",
  running: "running",
  waiting: "waiting",
  succeeded: "succeeded",
  failed: "failed",
  skipped: "skipped",
  cancelled: "cancelled",
};

// A map's items so far, from its latest `map_progress` event: "37/200 (2 failed)".
export function progressText({ done, total, failed }) {
  return `${done}/${total}${failed ? ` (${failed} failed)` : ""}`;
}

// A type's glyph beside its title; decoration only, as the title says the same.
export function TypeIcon({ icon }) {
  return icon ? (
    <span className="fn-type-icon" aria-hidden="true">
      {icon}
    </span>
  ) : null;
}

function FlowNodeView({ id, data, selected }) {
  const catalogue = useContext(CatalogueContext);
  const edges = useEdges();
  const spec = typeSpec(catalogue, data.kind);
  const config = data.config || {};
  const handles = sourceHandles(data.kind, spec, id, edges, config);
  const stale = staleHandles(spec, config, handles);
  // Handles that come and go with the data (a switch's cases): React Flow must measure them again, or an edge
  // drawn from a new one starts from nowhere. Not when the node mounts: React Flow measures it then, and asking
  // it to as well makes the canvas's first fit (`fitView`) frame this node alone, before the others are measured.
  const updateNodeInternals = useUpdateNodeInternals();
  const handleKey = handles.join("\u0000");
  const measuredHandles = useRef(handleKey);
  useEffect(() => {
    if (measuredHandles.current === handleKey) return;
    measuredHandles.current = handleKey;
    updateNodeInternals(id);
  }, [id, handleKey, updateNodeInternals]);
  const classes = ["fn-node"];
  if (data.status) classes.push(`fn-status-${data.status}`);
  if (data.issues?.length) classes.push("fn-has-issues");
  if (data.changed) classes.push("fn-changed");
  if (data.diff) classes.push(`fn-diff-${data.diff}`);
  if (selected) classes.push("fn-selected");
  const line = renderSummary(spec.summary, config);
  return (
    <div
      className={classes.join(" ")}
      style={{ "--fn-kind-colour": spec.colour, minHeight: handles.length > 3 ? `${handles.length * 20}px` : undefined }}
      data-node-id={id}
      data-kind={data.kind}
      data-status={data.status || undefined}
      data-diff={data.diff || undefined}
    >
      {spec.accepts_incoming && <Handle type="target" position={Position.Left} />}
      <div className="fn-node-head">
        <span className="fn-node-type" title={spec.description || undefined}>
          <TypeIcon icon={spec.icon} />
          {spec.title}
        </span>
        {data.diff && <span className="fn-node-status fn-node-diff">{data.diff}</span>}
        {data.status && (
          <span className="fn-node-status" aria-label={`status: ${STATUS_TEXT[data.status] || data.status}`}>
            {STATUS_TEXT[data.status] || data.status}
          </span>
        )}
      </div>
      <div className="fn-node-id">{config.label || id}</div>
      {config.label && <div className="fn-node-sub">{id}</div>}
      {line && <div className="fn-node-sub" title={line}>{line}</div>}
      {data.stream && <div className="fn-node-stream">{data.stream}</div>}
      {data.progress && (
        <div className="fn-node-sub fn-node-progress" role="status">
          {progressText(data.progress)}
        </div>
      )}
      {data.compare && <div className="fn-node-sub">{data.compare}</div>}
      {data.issues?.length > 0 && (
        <ul className="fn-node-issues" role="alert">
          {data.issues.map((issue, index) => (
            <li key={index}>{issue}</li>
          ))}
        </ul>
      )}
      {handles.map((handle, index) => (
        <Handle
          key={handle ?? "_out"}
          id={handle ?? undefined}
          type="source"
          position={Position.Right}
          style={handles.length > 1 ? { top: `${((index + 1) * 100) / (handles.length + 1)}%` } : undefined}
          className={handleClass(handle, stale, spec)}
          title={handleTitle(handle, stale, spec)}
        >
          {handle && <span className="fn-handle-label">{handle}</span>}
        </Handle>
      ))}
    </div>
  );
}

export const FlowNode = memo(FlowNodeView);
export const nodeTypes = { flownova: FlowNode };
