// Copy buttons: <button data-copy="ID" hidden> copies the text of the element with that id. The text is on the
// page and selectable either way; the buttons are shown only where this script runs, and when the clipboard is
// refused (an insecure origin, a denied permission) the text is selected for the user to copy.

function reveal(root) {
  for (const button of root.querySelectorAll("button[data-copy][hidden]")) button.hidden = false;
}

function select(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

function say(button, text) {
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.textContent = text;
  clearTimeout(Number(button.dataset.timer));
  button.dataset.timer = String(setTimeout(() => (button.textContent = label), 2000));
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    say(button, "Copied");
  } catch {
    select(source);
    say(button, "Selected: press Ctrl+C");
  }
});

// Parts swapped in by htmx later (the triggers section is loaded after the page) bring their own buttons.
document.addEventListener("htmx:load", (event) => reveal(event.target));
reveal(document);
