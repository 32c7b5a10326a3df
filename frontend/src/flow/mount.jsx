// Mounts a canvas component into a page element with what every canvas needs around it.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { ReactFlowProvider } from "@xyflow/react";
import { CatalogueContext } from "./nodes.jsx";
import { readJsonScript } from "./graph.js";
import { normaliseCatalogue } from "./catalogue.js";

// The node type catalogue the page embeds (`flow-catalogue`), keyed by type, every key filled in. What is
// wrong with it is logged (and drawn with defaults), so a bad entry shows in the console, not as a blank page.
export function catalogueOnPage() {
  const { catalogue, problems } = normaliseCatalogue(readJsonScript("flow-catalogue") ?? []);
  for (const problem of problems) console.error(`flow-catalogue: ${problem}`);
  return catalogue;
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
