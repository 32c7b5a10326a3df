// The workflow editor: palette, canvas, side panel; saves through the REST API, which validates
// on the server and answers 400 with issues naming the nodes and edges at fault, marked here on the canvas.
import "@xyflow/react/dist/style.css";
import "./flow/flow.css";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  addEdge,
  useEdgesState,
  useNodesState,
  useReactFlow,
} from "@xyflow/react";
import { NODE_HEIGHT, NODE_WIDTH, layout, readJsonScript, toFlow, toGraph } from "./flow/graph.js";
import { TypeIcon, nodeTypes } from "./flow/nodes.jsx";
import { catalogueOnPage, mountFlow } from "./flow/mount.jsx";
import { paletteGroups, typeSpec } from "./flow/catalogue.js";
import NodeForm from "./editor/NodeForm.jsx";

const DRAG_TYPE = "application/x-flownova-node";
const HISTORY_LIMIT = 100;
// Edits of one field within this time are one undo step, not one per keystroke.
const COALESCE_MS = 1500;
// Half a node: subtracted from a point to place a node centred on it.
const HALF_W = NODE_WIDTH / 2;
const HALF_H = NODE_HEIGHT / 2;
// How the canvas frames the graph, on opening and after auto layout: never zoomed in past readable size.
const FIT_VIEW = { padding: 0.2, maxZoom: 1.2 };

function uniqueId(base, taken) {
  if (!taken.has(base)) return base;
  for (let n = 2; ; n += 1) if (!taken.has(`${base}_${n}`)) return `${base}_${n}`;
}

function edgeId(edges, source, handle, target) {
  const taken = new Set(edges.map((edge) => edge.id));
  return uniqueId(`e-${source}${handle ? `-${handle}` : ""}-${target}`.slice(0, 190), taken);
}

function csrfToken(root) {
  return root.dataset.csrf || document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)?.[1] || "";
}

// Issues from the server -> what each node and edge shows.
function splitIssues(issues) {
  const byNode = new Map();
  const byEdge = new Map();
  for (const issue of issues) {
    // On the node itself, "node "x": " says nothing more.
    const text = issue.node_id ? issue.message.replace(`node "${issue.node_id}": `, "") : issue.message;
    if (issue.node_id) {
      if (!byNode.has(issue.node_id)) byNode.set(issue.node_id, []);
      byNode.get(issue.node_id).push(text);
    }
    if (issue.edge_id) {
      if (!byEdge.has(issue.edge_id)) byEdge.set(issue.edge_id, []);
      byEdge.get(issue.edge_id).push(text);
    }
  }
  return { byNode, byEdge };
}

// A 400 body from the API -> a list of issues: `graph` lists issue objects; other fields list messages.
function issuesFrom(body) {
  if (!body || typeof body !== "object") return [{ message: "The server refused the workflow." }];
  const issues = [];
  // `detail` summarises the field errors that follow; show it only when it is all there is.
  const keys = Object.keys(body).filter((key) => key !== "detail");
  for (const [key, value] of Object.entries(body)) {
    if (key === "detail" && keys.length) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item && typeof item === "object") issues.push(item);
      else issues.push({ message: key === "graph" || key === "detail" ? String(item) : `${key}: ${item}` });
    }
  }
  return issues;
}

function Editor({ root, workflow, catalogue, tools }) {
  const initial = useMemo(() => toFlow(workflow.graph), [workflow]);
  const [nodes, setNodes, onNodesChange] = useNodesState(initial.nodes);
  const [edges, setEdges, onEdgesChange] = useEdgesState(initial.edges);
  const [name, setName] = useState(workflow.name || "");
  const [description, setDescription] = useState(workflow.description || "");
  const [version, setVersion] = useState(workflow.version || null);
  // What this save changed, kept on the version it creates; cleared once saved.
  const [message, setMessage] = useState("");
  const [issues, setIssues] = useState([]);
  const [status, setStatus] = useState("");
  const [saving, setSaving] = useState(false);
  const [savedState, setSavedState] = useState(() =>
    JSON.stringify([workflow.name || "", workflow.description || "", toGraph(initial.nodes, initial.edges)]),
  );
  const past = useRef([]);
  const future = useRef([]);
  const lastRecord = useRef({ key: "", at: 0 });
  const [, setHistoryTick] = useState(0);
  const flow = useReactFlow();
  const wrapper = useRef(null);
  const isNew = !workflow.id;

  const current = JSON.stringify([name, description, toGraph(nodes, edges)]);
  const dirty = current !== savedState;

  // --- undo / redo ---------------------------------------------------------------------------------------
  const snapshot = useCallback(() => ({ nodes: flow.getNodes(), edges: flow.getEdges() }), [flow]);
  const record = useCallback(
    (key = "") => {
      const now = Date.now();
      if (key && key === lastRecord.current.key && now - lastRecord.current.at < COALESCE_MS) {
        lastRecord.current.at = now;
        return;
      }
      lastRecord.current = { key, at: now };
      past.current = [...past.current.slice(-(HISTORY_LIMIT - 1)), snapshot()];
      future.current = [];
      setHistoryTick((tick) => tick + 1);
    },
    [snapshot],
  );
  const travel = useCallback(
    (from, to) => {
      if (!from.current.length) return;
      const state = from.current[from.current.length - 1];
      from.current = from.current.slice(0, -1);
      to.current = [...to.current, snapshot()];
      lastRecord.current = { key: "", at: 0 };
      setNodes(state.nodes);
      setEdges(state.edges);
      setHistoryTick((tick) => tick + 1);
    },
    [snapshot, setNodes, setEdges],
  );
  const undo = useCallback(() => travel(past, future), [travel]);
  const redo = useCallback(() => travel(future, past), [travel]);

  useEffect(() => {
    const onKey = (event) => {
      const typing = event.target.closest?.("input, textarea, select, [contenteditable]");
      if (typing || !(event.ctrlKey || event.metaKey)) return;
      const key = event.key.toLowerCase();
      if (key === "z" && !event.shiftKey) {
        event.preventDefault();
        undo();
      } else if ((key === "z" && event.shiftKey) || key === "y") {
        event.preventDefault();
        redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [undo, redo]);

  // Read by the beforeunload listener; a ref, so a save that navigates away at once is not asked about.
  const dirtyRef = useRef(dirty);
  dirtyRef.current = dirty;
  useEffect(() => {
    const warn = (event) => {
      if (!dirtyRef.current) return;
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, []);

  // --- editing -------------------------------------------------------------------------------------------
  const addNode = useCallback(
    (kind, position) => {
      record();
      const taken = new Set(flow.getNodes().map((node) => node.id));
      const id = uniqueId(kind, taken);
      const node = { id, type: "flownova", position, data: { kind, config: {} }, selected: true };
      setNodes((all) => [...all.map((other) => ({ ...other, selected: false })), node]);
      setStatus(`Added ${typeSpec(catalogue, kind).title} node ${id}.`);
    },
    [flow, record, setNodes, catalogue],
  );

  const onDragOver = useCallback((event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  }, []);
  const onDrop = useCallback(
    (event) => {
      event.preventDefault();
      const kind = event.dataTransfer.getData(DRAG_TYPE);
      if (!kind || !catalogue[kind]) return;
      const point = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      addNode(kind, { x: point.x - HALF_W, y: point.y - HALF_H });
    },
    [flow, addNode, catalogue],
  );
  const addAtCentre = (kind) => {
    const box = wrapper.current.getBoundingClientRect();
    const point = flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 2 });
    const jitter = (flow.getNodes().length % 5) * 16;
    addNode(kind, { x: point.x - HALF_W + jitter, y: point.y - HALF_H + jitter });
  };

  const isValidConnection = useCallback(
    (connection) =>
      connection.source !== connection.target &&
      !flow
        .getEdges()
        .some(
          (edge) =>
            edge.source === connection.source &&
            edge.target === connection.target &&
            (edge.sourceHandle || null) === (connection.sourceHandle || null),
        ),
    [flow],
  );
  const onConnect = useCallback(
    (connection) => {
      record();
      setEdges((all) =>
        addEdge(
          {
            ...connection,
            targetHandle: null,
            id: edgeId(all, connection.source, connection.sourceHandle, connection.target),
          },
          all,
        ),
      );
    },
    [record, setEdges],
  );

  const onData = useCallback(
    (id, config, key) => {
      record(`${id}:${key}`);
      setNodes((all) => all.map((node) => (node.id === id ? { ...node, data: { ...node.data, config } } : node)));
    },
    [record, setNodes],
  );
  const onRename = useCallback(
    (from, to) => {
      record();
      setNodes((all) => all.map((node) => (node.id === from ? { ...node, id: to } : node)));
      setEdges((all) =>
        all.map((edge) => ({
          ...edge,
          source: edge.source === from ? to : edge.source,
          target: edge.target === from ? to : edge.target,
        })),
      );
      setStatus(`Renamed ${from} to ${to}.`);
    },
    [record, setNodes, setEdges],
  );
  const onDeleteNode = useCallback(
    (id) => {
      record();
      setNodes((all) => all.filter((node) => node.id !== id));
      setEdges((all) => all.filter((edge) => edge.source !== id && edge.target !== id));
      setStatus(`Deleted node ${id}.`);
    },
    [record, setNodes, setEdges],
  );
  const autoLayout = () => {
    record();
    setNodes(layout(flow.getNodes(), flow.getEdges()));
    window.requestAnimationFrame(() => flow.fitView(FIT_VIEW));
  };

  // --- saving --------------------------------------------------------------------------------------------
  const send = (url, method, payload) =>
    fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken(root) },
      body: JSON.stringify(payload),
    });
  const refuse = (found) => {
    setIssues(found);
    setStatus(`Not saved: ${found.length} problem${found.length === 1 ? "" : "s"} to fix (marked on the canvas).`);
  };

  const save = async () => {
    if (!name.trim()) {
      setStatus("Not saved: the workflow needs a name.");
      return;
    }
    setSaving(true);
    setStatus("Checking…");
    const graph = toGraph(nodes, edges);
    let response;
    try {
      // The server checks the graph first (200 with every issue), so an invalid graph is marked without a
      // failed request; the save itself validates again and would refuse it with a 400 all the same.
      const editing = Number(root.dataset.workflowId) || undefined; // a saved workflow: cycles through it count
      const check = await send(root.dataset.validateUrl, "POST", { graph, workflow: editing });
      const verdict = await check.json().catch(() => null);
      if (check.ok && verdict && !verdict.valid) {
        setSaving(false);
        refuse(verdict.issues);
        return;
      }
      setStatus("Saving…");
      const payload = { name, description, graph };
      if (message.trim()) payload.message = message.trim();
      // A new workflow goes into the project the page was opened for (default: the user's personal one).
      if (isNew && root.dataset.projectId) payload.project = Number(root.dataset.projectId);
      response = await send(root.dataset.apiUrl, isNew ? "POST" : "PUT", payload);
    } catch (exc) {
      setSaving(false);
      setStatus(`Not saved: the server could not be reached (${exc.message}).`);
      return;
    }
    const body = await response.json().catch(() => null);
    setSaving(false);
    if (response.ok) {
      setIssues([]);
      // The server may complete a node's data as it saves (a subworkflow's pinned version): the editor takes
      // the data as stored, so the next save sends it back instead of leaving it out.
      const stored = new Map((body?.graph?.nodes || []).map((node) => [node.id, node.data || {}]));
      const synced = nodes.map((node) =>
        stored.has(node.id) ? { ...node, data: { ...node.data, config: stored.get(node.id) } } : node,
      );
      setNodes(synced);
      setSavedState(JSON.stringify([name, description, toGraph(synced, edges)]));
      setVersion(body.version);
      setMessage("");
      if (isNew) {
        dirtyRef.current = false;
        window.location.assign(root.dataset.editUrl.replace("__id__", String(body.id)));
        return;
      }
      setStatus(`Saved: version ${body.version}.`);
      return;
    }
    if (response.status === 400) {
      refuse(issuesFrom(body));
    } else {
      setStatus(`Not saved: the server answered ${response.status}${body?.detail ? ` (${body.detail})` : ""}.`);
    }
  };

  // --- what the canvas shows -----------------------------------------------------------------------------
  const { byNode, byEdge } = useMemo(() => splitIssues(issues), [issues]);
  const graphWide = issues.some((issue) => !issue.node_id && !issue.edge_id);
  const shownNodes = useMemo(
    () => nodes.map((node) => (byNode.has(node.id) ? { ...node, data: { ...node.data, issues: byNode.get(node.id) } } : node)),
    [nodes, byNode],
  );
  const shownEdges = useMemo(
    () =>
      edges.map((edge) =>
        byEdge.has(edge.id)
          ? { ...edge, className: "fn-edge-issue", label: byEdge.get(edge.id).join("; "), ariaLabel: byEdge.get(edge.id).join("; ") }
          : edge,
      ),
    [edges, byEdge],
  );
  const selected = nodes.filter((node) => node.selected);
  const single = selected.length === 1 ? selected[0] : null;

  const select = (id) => {
    setNodes((all) => all.map((node) => ({ ...node, selected: node.id === id })));
    const node = flow.getNode(id);
    if (node) flow.setCenter(node.position.x + HALF_W, node.position.y + HALF_H, { duration: 200, zoom: flow.getZoom() });
  };

  return (
    <div className="fn-editor">
      <div className="fn-toolbar">
        <label className="fn-inline">
          Name <input id="workflow-name" type="text" value={name} maxLength={200} onChange={(event) => setName(event.target.value)} required />
        </label>
        <label className="fn-inline fn-grow">
          Description{" "}
          <input id="workflow-description" type="text" value={description} onChange={(event) => setDescription(event.target.value)} />
        </label>
        <button type="button" onClick={undo} disabled={!past.current.length} title="Undo (Ctrl+Z)">
          Undo
        </button>
        <button type="button" onClick={redo} disabled={!future.current.length} title="Redo (Ctrl+Shift+Z)">
          Redo
        </button>
        <button type="button" onClick={autoLayout}>
          Auto layout
        </button>
        <label className="fn-inline">
          <span className="visually-hidden">What changed (kept with the version)</span>
          <input
            id="workflow-save-message"
            type="text"
            value={message}
            maxLength={500}
            placeholder="What changed (optional)"
            onChange={(event) => setMessage(event.target.value)}
          />
        </label>
        <button type="button" className="primary" onClick={save} disabled={saving}>
          {isNew ? "Create" : "Save"}
        </button>
        {version && !isNew && (
          <a href={root.dataset.detailUrl} className="fn-run-link">
            {dirty ? "Open (unsaved changes)" : "Run…"}
          </a>
        )}
      </div>
      <p className="fn-save-status" role="status" aria-live="polite">
        {status}
        {!status && (dirty ? "Unsaved changes." : version ? `Version ${version}.` : "")}
      </p>
      <div className="fn-editor-body">
        <aside className="fn-palette" aria-label="Node types">
          <h2>Add a node</h2>
          <p className="hint">Drag onto the canvas, or press to add in the middle.</p>
          {paletteGroups(catalogue).map(({ group, types }) => (
            <div key={group} className="fn-palette-group">
              <h3>{group}</h3>
              <ul>
                {types.map((spec) => (
                  <li key={spec.type}>
                    <button
                      type="button"
                      draggable
                      className="fn-palette-item"
                      style={{ "--fn-kind-colour": spec.colour }}
                      data-kind={spec.type}
                      title={spec.description || undefined}
                      onDragStart={(event) => {
                        event.dataTransfer.setData(DRAG_TYPE, spec.type);
                        event.dataTransfer.effectAllowed = "move";
                      }}
                      onClick={() => addAtCentre(spec.type)}
                    >
                      <TypeIcon icon={spec.icon} />
                      {spec.title}
                    </button>
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </aside>
        <div className="fn-canvas" ref={wrapper} onDragOver={onDragOver} onDrop={onDrop}>
          <ReactFlow
            nodes={shownNodes}
            edges={shownEdges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            isValidConnection={isValidConnection}
            onNodeDragStart={() => record()}
            onBeforeDelete={async () => {
              record();
              return true;
            }}
            deleteKeyCode={["Backspace", "Delete"]}
            fitView
            fitViewOptions={FIT_VIEW}
            defaultEdgeOptions={{ type: "smoothstep" }}
          >
            <Background gap={16} />
            <Controls showInteractive={false} />
            <MiniMap pannable zoomable ariaLabel="Overview of the graph" />
          </ReactFlow>
        </div>
        <aside className="fn-side" aria-label="Selected node">
          {issues.length > 0 && (
            <section className="notice notice-error fn-issues" aria-labelledby="fn-issues-heading">
              <h2 id="fn-issues-heading">Not saved: fix these</h2>
              <ul>
                {issues.map((issue, index) => (
                  <li key={index}>
                    {issue.node_id && nodes.some((node) => node.id === issue.node_id) ? (
                      <button type="button" className="link-button" onClick={() => select(issue.node_id)}>
                        {issue.node_id}
                      </button>
                    ) : (
                      issue.node_id && <code>{issue.node_id}</code>
                    )}
                    {issue.edge_id && <code>edge {issue.edge_id}</code>} {issue.message}
                  </li>
                ))}
              </ul>
              {graphWide && <p className="small">Issues without a node apply to the whole graph.</p>}
            </section>
          )}
          {single ? (
            <NodeForm
              key={single.id}
              node={single}
              spec={typeSpec(catalogue, single.data.kind)}
              catalogue={catalogue}
              nodes={nodes}
              edges={edges}
              tools={tools}
              issues={byNode.get(single.id) || []}
              onData={onData}
              onRename={onRename}
              onDelete={onDeleteNode}
            />
          ) : (
            <div className="fn-help">
              <h2>Build the workflow</h2>
              <ul className="small">
                <li>Add nodes from the palette; connect them by dragging from a node's right handle to another node.</li>
                <li>Branching nodes have one handle per outcome, named beside it (true/false, approved/rejected…).</li>
                <li>Select a node to configure it here. Delete or Backspace removes what is selected.</li>
                <li>Save checks the graph on the server and marks what is wrong.</li>
              </ul>
              {selected.length > 1 && <p>{selected.length} nodes selected.</p>}
            </div>
          )}
        </aside>
      </div>
    </div>
  );
}

function mount() {
  const root = document.getElementById("flow-editor");
  if (!root) return;
  const catalogue = catalogueOnPage();
  const workflow = readJsonScript("editor-workflow");
  const tools = readJsonScript("editor-tools") || [];
  mountFlow(root, <Editor root={root} workflow={workflow} catalogue={catalogue} tools={tools} />, catalogue);
}

mount();
