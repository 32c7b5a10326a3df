// Read-only canvases: the live run view (node states over the run's WebSocket, the path taken, streamed
// agent text), the compare page (nodes whose output changed), the version diff page (nodes and edges added,
// removed, changed), and plain graph previews (a workflow, or the
// graph a cognitive node designed). Any element with `data-flow-graph="<json_script id>"` gets a canvas,
// including ones htmx swaps in later.
import "@xyflow/react/dist/style.css";
import "./flow/flow.css";
import { useEffect, useMemo, useRef, useState } from "react";
import { Background, Controls, ReactFlow, useNodesState } from "@xyflow/react";
import { readJsonScript, toFlow } from "./flow/graph.js";
import { nodeTypes } from "./flow/nodes.jsx";
import { catalogueOnPage, mountFlow } from "./flow/mount.jsx";

const STREAM_CHARS = 90;
const REFRESH_DELAY_MS = 150;

// Which edges the run went along: the source finished and chose this edge's handle (or routes along all
// its edges), and the target was reached.
function takenEdges(edges, states) {
  const taken = new Set();
  for (const edge of edges) {
    const source = states[edge.source];
    const target = states[edge.target];
    if (!source || source.status !== "succeeded" || !target || target.status === "skipped") continue;
    // A node that chose a handle (true/false, approved/rejected...) went along that handle's edges only.
    if (source.handle && edge.sourceHandle !== source.handle) continue;
    taken.add(edge.id);
  }
  return taken;
}

// What a plain preview adds to its nodes and edges: nothing.
const NO_DECORATION = () => ({});

function decorated(node, decorate) {
  return { ...node, draggable: false, connectable: false, data: { ...node.data, ...decorate(node) } };
}

function ReadOnlyFlow({ graph, decorate = NO_DECORATION, decorateEdge = NO_DECORATION, onNodeClick, label }) {
  const base = useMemo(() => toFlow(graph), [graph]);
  // The nodes live in React Flow's own state (dimension changes applied to them), and a change of decoration
  // (a node's live status) updates their data only. New node objects without their measured size would make
  // React Flow hide every node until it measured them again, at every state change of a live run.
  const [nodes, setNodes, onNodesChange] = useNodesState(() => base.nodes.map((node) => decorated(node, decorate)));
  const drawnBase = useRef(base);
  useEffect(() => {
    if (drawnBase.current !== base) {
      drawnBase.current = base;
      setNodes(base.nodes.map((node) => decorated(node, decorate)));
      return;
    }
    const data = new Map(base.nodes.map((node) => [node.id, node.data]));
    setNodes((current) => current.map((node) => ({ ...node, data: { ...data.get(node.id), ...decorate(node) } })));
  }, [base, decorate]);
  const edges = useMemo(() => base.edges.map((edge) => ({ ...edge, ...decorateEdge(edge) })), [base, decorateEdge]);
  return (
    <ReactFlow
      nodes={nodes}
      onNodesChange={onNodesChange}
      edges={edges}
      nodeTypes={nodeTypes}
      nodesDraggable={false}
      nodesConnectable={false}
      edgesFocusable={false}
      elementsSelectable={!!onNodeClick}
      onNodeClick={onNodeClick ? (_event, node) => onNodeClick(node.id) : undefined}
      fitView
      fitViewOptions={{ padding: 0.15, maxZoom: 1.1 }}
      minZoom={0.2}
      defaultEdgeOptions={{ type: "smoothstep" }}
      aria-label={label}
    >
      <Background gap={16} />
      <Controls showInteractive={false} />
    </ReactFlow>
  );
}

// A map node's progress: from its last `map_progress` event, or from the server's states (which a page opened
// late reads, having missed the events), whichever has seen more items end.
function latestProgress(fromEvent, fromStates) {
  if (!fromEvent) return fromStates;
  if (!fromStates) return fromEvent;
  return fromEvent.done >= fromStates.done ? fromEvent : fromStates;
}

function RunCanvas({ element, initial }) {
  const [states, setStates] = useState(initial.nodes || {});
  const [streams, setStreams] = useState({});
  const [progress, setProgress] = useState({}); // a map node's latest map_progress, by node id
  const runId = initial.run_id;

  useEffect(() => {
    let timer = null;
    let controller = null;
    // Events say what changed; the server's states are the truth (they also carry what no event names, such
    // as successors becoming queued), so every burst of events ends with one fetch of them.
    const refresh = () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        controller?.abort();
        controller = new AbortController();
        try {
          const response = await fetch(element.dataset.statesUrl, {
            credentials: "same-origin",
            headers: { Accept: "application/json" },
            signal: controller.signal,
          });
          if (response.ok) setStates((await response.json()).nodes);
        } catch (exc) {
          if (exc.name !== "AbortError") console.warn("run canvas: states not refreshed", exc);
        }
      }, REFRESH_DELAY_MS);
    };
    const onEvent = (event) => {
      const message = event.detail;
      if (!message || message.run_id !== runId) return;
      const id = message.node_id;
      if (message.type === "llm_token" && id) {
        const text = message.data?.text || "";
        setStreams((all) => ({ ...all, [id]: `${all[id] || ""}${text}`.slice(-STREAM_CHARS) }));
        return;
      }
      if (message.type === "map_progress" && id) {
        setProgress((all) => ({ ...all, [id]: message.data }));
        return;
      }
      const quick = {
        node_started: "running",
        node_completed: "succeeded",
        node_skipped: "skipped",
        approval_needed: "waiting",
      }[message.type];
      if (id && quick) {
        setStates((all) => ({
          ...all,
          [id]: { ...all[id], status: quick, handle: message.data?.handle ?? all[id]?.handle ?? "" },
        }));
      } else if (id && message.type === "node_failed" && !message.data?.will_retry) {
        setStates((all) => ({ ...all, [id]: { ...all[id], status: "failed" } }));
      }
      refresh();
    };
    document.addEventListener("flownova:run-event", onEvent);
    // The page's socket may have delivered events before this listener existed (the states embedded in the
    // page are as old as the page): read the states once now, so the canvas never stays behind.
    refresh();
    return () => {
      document.removeEventListener("flownova:run-event", onEvent);
      clearTimeout(timer);
      controller?.abort();
    };
  }, [element, runId]);

  // The graph never changes; only the states do, so its edges are converted once.
  const edges = useMemo(() => toFlow(initial.graph).edges, [initial.graph]);
  const taken = useMemo(() => takenEdges(edges, states), [edges, states]);
  const decorate = useMemo(
    () => (node) => ({
      status: states[node.id]?.status,
      stream: states[node.id]?.status === "running" ? streams[node.id] : undefined,
      progress: latestProgress(progress[node.id], states[node.id]?.progress),
    }),
    [states, streams, progress],
  );
  const decorateEdge = useMemo(
    () => (edge) => ({ className: taken.has(edge.id) ? "fn-edge-taken" : "fn-edge-idle" }),
    [taken],
  );
  const onNodeClick = (nodeId) => {
    const target = element.dataset.detailTarget;
    const url = element.dataset.nodeUrl.replace("__node__", encodeURIComponent(nodeId));
    if (window.htmx && target) window.htmx.ajax("GET", url, { target, swap: "innerHTML" });
  };
  return (
    <ReadOnlyFlow
      graph={initial.graph}
      decorate={decorate}
      decorateEdge={decorateEdge}
      onNodeClick={onNodeClick}
      label="The run's graph; select a node to see its input, output and calls"
    />
  );
}

function CompareCanvas({ data }) {
  const changed = useMemo(() => new Set(data.changed || []), [data]);
  const decorate = useMemo(
    () => (node) => {
      const a = data.a?.[node.id] || "not reached";
      const b = data.b?.[node.id] || "not reached";
      return { changed: changed.has(node.id), compare: a === b ? a : `${a} → ${b}` };
    },
    [data, changed],
  );
  return <ReadOnlyFlow graph={data.graph} decorate={decorate} label="Compared runs; changed nodes are marked" />;
}

// The version diff page: both versions' graphs in one (version b's, plus what a had and b removed), each node
// and edge marked added, removed or changed.
function VersionDiffCanvas({ data }) {
  const marks = data.marks || { nodes: {}, edges: {} };
  const decorate = useMemo(() => (node) => ({ diff: marks.nodes[node.id] }), [marks]);
  const decorateEdge = useMemo(
    () => (edge) => (marks.edges[edge.id] ? { className: `fn-edge-diff-${marks.edges[edge.id]}` } : {}),
    [marks],
  );
  return (
    <ReadOnlyFlow
      graph={data.graph}
      decorate={decorate}
      decorateEdge={decorateEdge}
      label="Both versions' graphs; added, removed and changed nodes are marked"
    />
  );
}

function GraphPreview({ graph }) {
  return <ReadOnlyFlow graph={graph} label="Workflow graph" />;
}

let catalogue = null;
const catalogueOnce = () => (catalogue ??= catalogueOnPage());

function mountAll() {
  const run = document.getElementById("run-canvas");
  if (run && !run.dataset.flowMounted) {
    mountFlow(run, <RunCanvas element={run} initial={readJsonScript(run.dataset.source)} />, catalogueOnce());
  }
  const compare = document.getElementById("compare-canvas");
  if (compare && !compare.dataset.flowMounted) {
    const data = readJsonScript("compare-data");
    if (data) mountFlow(compare, <CompareCanvas data={data} />, catalogueOnce());
  }
  const versionDiff = document.getElementById("version-diff-canvas");
  if (versionDiff && !versionDiff.dataset.flowMounted) {
    const data = readJsonScript("version-diff-data");
    if (data) mountFlow(versionDiff, <VersionDiffCanvas data={data} />, catalogueOnce());
  }
  for (const element of document.querySelectorAll("[data-flow-graph]:not([data-flow-mounted])")) {
    const graph = readJsonScript(element.dataset.flowGraph);
    if (graph) mountFlow(element, <GraphPreview graph={graph} />, catalogueOnce());
  }
}

mountAll();
document.addEventListener("htmx:afterSettle", mountAll);
