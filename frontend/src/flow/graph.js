// Conversions between the contract's graph document (docs/CONTRACT.md) and React Flow's state. The contract is
// React Flow's own shape, so this only fills in what the canvas needs (positions, handles seen on edges)
// and strips what React Flow adds (selection, measured sizes) on the way back.
import dagre from "@dagrejs/dagre";
import { dataHandles } from "./catalogue.js";

export const NODE_WIDTH = 190;
export const NODE_HEIGHT = 64;

// Drawn on top: the outcome most graphs follow (the node renderer puts these handles first too).
const FIRST_HANDLES = new Set(["true", "pass", "approved", "success"]);
const handleRank = (edge) => (!edge.sourceHandle || FIRST_HANDLES.has(edge.sourceHandle) ? 0 : 1);

// Nodes breadth-first from the roots, following each node's first-drawn handles first. dagre starts from
// the order nodes are given in, so branches come out in the same top-to-bottom order as their handles.
function readingOrder(nodes, edges) {
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const targets = new Set(edges.map((edge) => edge.target));
  const queue = nodes.filter((node) => !targets.has(node.id));
  const seen = new Set(queue.map((node) => node.id));
  const ordered = [];
  while (queue.length) {
    const node = queue.shift();
    ordered.push(node);
    const out = edges.filter((edge) => edge.source === node.id).sort((a, b) => handleRank(a) - handleRank(b));
    for (const edge of out) {
      if (!seen.has(edge.target) && byId.has(edge.target)) {
        seen.add(edge.target);
        queue.push(byId.get(edge.target));
      }
    }
  }
  return [...ordered, ...nodes.filter((node) => !seen.has(node.id))];
}

// Lays the graph out left to right (dagre). Used by "Auto layout" and for graphs without positions,
// such as the ones a cognitive node designs.
export function layout(nodes, edges) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 70, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of readingOrder(nodes, edges)) {
    g.setNode(node.id, {
      width: node.measured?.width || NODE_WIDTH,
      height: node.measured?.height || NODE_HEIGHT,
    });
  }
  for (const edge of edges) {
    if (g.hasNode(edge.source) && g.hasNode(edge.target)) g.setEdge(edge.source, edge.target);
  }
  dagre.layout(g);
  const placed = nodes.map((node) => {
    const at = g.node(node.id);
    const width = node.measured?.width || NODE_WIDTH;
    const height = node.measured?.height || NODE_HEIGHT;
    return { ...node, position: { x: Math.round(at.x - width / 2), y: Math.round(at.y - height / 2) } };
  });
  return branchesInHandleOrder(placed, edges);
}

// dagre orders a rank to reduce crossings without knowing about handles, so a true branch may land below
// its false one and the two edges cross. Children that hang off one branching node alone swap places
// (keeping the slots dagre chose) so they read top to bottom in their handles' order.
function branchesInHandleOrder(nodes, edges) {
  const incoming = new Map();
  for (const edge of edges) incoming.set(edge.target, (incoming.get(edge.target) || 0) + 1);
  const byId = new Map(nodes.map((node) => [node.id, node]));
  for (const node of nodes) {
    const out = edges
      .filter((edge) => edge.source === node.id && edge.sourceHandle && incoming.get(edge.target) === 1)
      .sort((a, b) => handleRank(a) - handleRank(b) || a.sourceHandle.localeCompare(b.sourceHandle));
    const children = [...new Set(out.map((edge) => edge.target))].map((id) => byId.get(id)).filter(Boolean);
    if (children.length < 2) continue;
    const slots = children.map((child) => child.position.y).sort((a, b) => a - b);
    children.forEach((child, index) => {
      byId.set(child.id, { ...child, position: { ...child.position, y: slots[index] } });
    });
  }
  return nodes.map((node) => byId.get(node.id));
}

function hasPosition(node) {
  const p = node.position;
  return p && Number.isFinite(p.x) && Number.isFinite(p.y);
}

// The contract's graph -> React Flow nodes and edges. Every canvas node uses our one renderer
// ("flownova"); the contract's type goes into data so React Flow never sees an unknown type.
export function toFlow(graph) {
  const nodes = (graph?.nodes || []).map((node) => ({
    id: String(node.id),
    type: "flownova",
    position: hasPosition(node) ? { x: node.position.x, y: node.position.y } : { x: 0, y: 0 },
    data: { kind: node.type, config: node.data && typeof node.data === "object" ? node.data : {} },
  }));
  const edges = (graph?.edges || []).map((edge, index) => ({
    id: edge.id ? String(edge.id) : `e${index + 1}`,
    source: String(edge.source),
    target: String(edge.target),
    // No edge label: the handle it leaves from is labelled on the node (true/false, approved/rejected...).
    sourceHandle: edge.sourceHandle ?? null,
  }));
  const missing = (graph?.nodes || []).some((node) => !hasPosition(node));
  return { nodes: missing && nodes.length ? layout(nodes, edges) : nodes, edges };
}

// React Flow's state -> the contract's graph, as the API expects it.
export function toGraph(nodes, edges) {
  return {
    nodes: nodes.map((node) => ({
      id: node.id,
      type: node.data.kind,
      position: { x: Math.round(node.position.x), y: Math.round(node.position.y) },
      data: node.data.config || {},
    })),
    edges: edges.map((edge) => {
      const out = { id: edge.id, source: edge.source, target: edge.target };
      if (edge.sourceHandle) out.sourceHandle = edge.sourceHandle;
      return out;
    }),
  };
}

// The handle of a node's error path: taken when a node whose type can fail (`can_fail`) fails for good.
export const ERROR_HANDLE = "error";

// The outgoing handles a node shows: the type's named handles (true/false, pass/fail...); for a type that
// reads them from the node's data (a switch's cases), those its `config` gives now, plus any handle its edges
// still leave from that the data no longer has (a case removed or renamed), so the edge stays in sight until it
// is reconnected or deleted (`staleHandles` names them; saving reports them); or, for types that take any
// label, one unnamed handle plus any label its edges already use. A type that can fail has its `error` handle
// last, whatever its others.
export function sourceHandles(kind, spec, nodeId, edges, config) {
  if (spec && spec.allows_outgoing === false) return [];
  const errorPath = Boolean(spec && spec.can_fail);
  const used = new Set();
  for (const edge of edges || []) {
    if (edge.source === nodeId && edge.sourceHandle) used.add(edge.sourceHandle);
  }
  if (errorPath) used.delete(ERROR_HANDLE);
  const withError = (handles) => (errorPath && !handles.includes(ERROR_HANDLE) ? [...handles, ERROR_HANDLE] : handles);
  if (spec && spec.handles_from) {
    const own = dataHandles(spec, config);
    return withError([...own, ...[...used].filter((handle) => !own.includes(handle)).sort()]);
  }
  if (spec && spec.handles) return withError(spec.handles);
  return withError([null, ...[...used].sort()]);
}

// The handles `sourceHandles` draws only because an edge still leaves from them.
export function staleHandles(spec, config, handles) {
  if (!spec || !spec.handles_from) return [];
  const own = dataHandles(spec, config);
  const errorPath = Boolean(spec.can_fail);
  return handles.filter((handle) => handle !== null && !own.includes(handle) && !(errorPath && handle === ERROR_HANDLE));
}

// A node's error path (`error` on a type that can fail) is drawn as such, whatever else its handles are.
function isErrorPath(handle, spec) {
  return handle === ERROR_HANDLE && Boolean(spec.can_fail);
}

export function handleClass(handle, stale, spec) {
  if (!handle) return "fn-handle";
  const classes = ["fn-handle", `fn-handle-${handle}`];
  if (isErrorPath(handle, spec)) classes.push("fn-handle-error-path");
  if (stale.includes(handle)) classes.push("fn-handle-stale");
  return classes.join(" ");
}

export function handleTitle(handle, stale, spec) {
  if (stale.includes(handle)) return `${handle}: no longer one of this node's handles; reconnect or delete its edge`;
  if (isErrorPath(handle, spec)) return "error: taken when the node fails for good (after its retries); drag to connect";
  return handle ? `${handle}: drag to connect` : "drag to connect";
}

export function readJsonScript(id) {
  const element = document.getElementById(id);
  if (!element) return null;
  return JSON.parse(element.textContent);
}
