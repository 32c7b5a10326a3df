// The subworkflow node's picker (`x-widget: "workflow"`): the workflows the user may run, from the API's list,
// and a hint describing the chosen one's input (its start node's input_schema). Pure, so it is tested alone.

export const WORKFLOWS_URL = "/api/workflows/?page_size=200";

// The options of the select: the listed workflows by name, the one being edited left out (a workflow cannot run
// itself), and a chosen id missing from the list kept, marked, so the form never drops a value silently.
export function workflowOptions(listed, currentId, chosen) {
  const options = (Array.isArray(listed) ? listed : [])
    .filter((item) => item && Number.isInteger(item.id) && item.id !== currentId)
    .map((item) => ({ id: item.id, label: `${item.name} (#${item.id}, v${item.version})`, missing: false }));
  if (Number.isInteger(chosen) && !options.some((option) => option.id === chosen)) {
    options.push({ id: chosen, label: `#${chosen} (not in your workflows)`, missing: true });
  }
  return options;
}

// What the chosen workflow expects as input, in a line: its start node's input_schema properties, the required
// ones marked with *; or that it takes any object.
export function inputHint(workflow) {
  const start = (workflow?.graph?.nodes || []).find((node) => node?.type === "start");
  const schema = start?.data?.input_schema;
  const properties = schema && typeof schema === "object" ? schema.properties : null;
  if (!properties || typeof properties !== "object" || !Object.keys(properties).length) {
    return "Its input: any object (its start node has no input_schema).";
  }
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const fields = Object.entries(properties).map(([name, property]) => {
    const type = property && typeof property === "object" && property.type ? `: ${[].concat(property.type).join(" | ")}` : "";
    return `${name}${required.has(name) ? "*" : ""}${type}`;
  });
  return `Its input: ${fields.join(", ")}${required.size ? " (* required)" : ""}.`;
}
