"""The pure workflow graph: parse a contract graph document, validate it, answer topology questions.

No Django here: the API, the import command and the engine all call `validate_graph` / `parse_graph` with the
node type specs from the node registry.

Validation collects every problem it can find (never only the first) as `Issue`s that name the node or edge at
fault, so the canvas can highlight them all at once. It never raises, whatever it is given; `parse_graph`
raises only GraphError.

Choices the contract leaves open:

- Unknown keys on nodes and edges (React Flow's ``type``, ``animated``, ``targetHandle``, ``width``...) are
  ignored and not kept. Missing ``edges`` means no edges; missing or null ``data`` means ``{}``; a null
  ``position`` means none; a null or empty ``sourceHandle`` means no handle.
- An edge without an ``id`` gets ``"<source>-><target>"`` or ``"<source>-><target>:<handle>"``.
- Edge ids are at most 200 characters and handles at most 64, the sizes the database keeps.
- A node's semantic check (`NodeSpec.check`) runs only once its data passed the JSON Schema, so checks can rely
  on the schema's guarantees.
- Above 500 nodes or 2000 edges the document gets a single Issue and nothing else is examined.
"""

from nodes.spec import Node, NodeSpec
from workflows.graph.model import (
    ANY_HANDLE,
    END_TYPE,
    MAX_EDGES,
    MAX_NODES,
    START_TYPE,
    Edge,
    Graph,
    GraphError,
    Issue,
)
from workflows.graph.validation import parse_graph, validate_graph

__all__ = [
    "ANY_HANDLE",
    "END_TYPE",
    "MAX_EDGES",
    "MAX_NODES",
    "START_TYPE",
    "Edge",
    "Graph",
    "GraphError",
    "Issue",
    "Node",
    "NodeSpec",
    "parse_graph",
    "validate_graph",
]
