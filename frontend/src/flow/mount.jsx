// Mounts a canvas component into a page element with what every canvas needs around it.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { ReactFlowProvider } from "@xyflow/react";
import { CatalogueContext } from "./nodes.jsx";
import { readJsonScript } from "./graph.js";

// The node type catalogue the page embeds (`flow-catalogue`), keyed by type.
export function catalogueOnPage() {
  const list = readJsonScript("flow-catalogue") || [];
  return Object.fromEntries(list.map((spec) => [spec.type, spec]));
}

export function mountFlow(element, child, catalogue) {
  element.dataset.flowMounted = "1";
  createRoot(element).render(
    <StrictMode>
      <CatalogueContext.Provider value={catalogue}>
        <ReactFlowProvider>{child}</ReactFlowProvider>
      </CatalogueContext.Provider>
    </StrictMode>,
  );
}
