// Live updates over FlowNova's WebSockets (docs/CONTRACT.md, Events). The server renders every table; this module
// only listens and asks htmx to re-fetch the parts that changed (elements listening for the fn-* events),
// except streamed LLM text, which has no server-rendered form and is appended to a transcript here.
// The session cookie authenticates the socket; the browser sends our Origin, which the server checks.

const RECONNECT_MAX_MS = 15000;

function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}

function announce(text) {
  const state = document.getElementById("live-state");
  if (state) state.textContent = text;
}

function signal(name) {
  document.body.dispatchEvent(new CustomEvent(name, { bubbles: true }));
}

// A part being swapped in can miss an event that arrives while its request is in flight (the old element
// is gone, the new one not yet listening). One more signal once a burst of events has gone quiet makes
// every part end on the latest state.
const settleTimers = new Map();
function signalAndSettle(name) {
  signal(name);
  clearTimeout(settleTimers.get(name));
  settleTimers.set(name, setTimeout(() => signal(name), 1000));
}

// Keeps one socket open, reconnecting with backoff. `pathFor()` is asked on every (re)connect, so the run
// stream can resume after the last seq it saw instead of replaying everything.
function keepOpen(pathFor, onMessage, { onOpen, onRefused } = {}) {
  let delay = 500;
  const connect = () => {
    const socket = new WebSocket(socketUrl(pathFor()));
    socket.addEventListener("open", () => {
      delay = 500;
      if (onOpen) onOpen();
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not one of ours
      }
      onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      // 4401/4404: not signed in, or not ours. Retrying would not change the answer.
      if (event.code === 4401 || event.code === 4404) {
        if (onRefused) onRefused();
        return;
      }
      announce("Live updates lost; reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    });
  };
  connect();
}

// One transcript per node; a child run's nodes (a cognitive node's generated workflow, whose events the
// parent's stream carries) get their own, labelled with the child run.
function transcriptFor(message, ownRunId) {
  const box = document.getElementById("transcripts");
  const child = message.run_id !== ownRunId;
  const id = `transcript-${message.run_id}-${message.node_id}`;
  let pre = document.getElementById(id);
  if (!pre) {
    document.getElementById("transcript-empty")?.remove();
    const heading = document.createElement("h3");
    heading.textContent = child
      ? `Child run #${message.run_id} (node ${message.parent_node_id}): node ${message.node_id}`
      : `Node ${message.node_id}`;
    pre = document.createElement("pre");
    pre.id = id;
    pre.className = "transcript";
    box.append(heading, pre);
  }
  return pre;
}

function watchRun(page) {
  const runId = Number(page.dataset.runId);
  // Highest seq seen per run. Only this run's own resumes the stream (?after=); child runs' events number on
  // their own and are replayed whole on a reconnect, so what was seen already is dropped here.
  const seen = new Map();
  keepOpen(
    () => {
      const lastSeq = seen.get(runId) || 0;
      return `${page.dataset.wsPath}${lastSeq ? `?after=${lastSeq}` : ""}`;
    },
    (message) => {
      if (typeof message.seq === "number") {
        if (message.seq <= (seen.get(message.run_id) || 0)) return;
        seen.set(message.run_id, message.seq);
      }
      // The run canvas (frontend/src/canvas.jsx) listens for these; one socket serves the whole page.
      document.dispatchEvent(new CustomEvent("flownova:run-event", { detail: message }));
      if (message.type === "llm_token") {
        const text = message.data && message.data.text;
        if (text && message.node_id) transcriptFor(message, runId).textContent += text;
        return;
      }
      signalAndSettle("fn-run-changed");
      if (message.type === "approval_needed" || message.type === "approval_decided") {
        signalAndSettle("fn-approvals-changed");
      }
    },
    {
      onOpen: () => announce("Live: updates appear as the run progresses."),
      onRefused: () => announce("Live updates are not available for this run."),
    },
  );
}

function watchApprovals() {
  keepOpen(
    () => "/ws/approvals/",
    (message) => {
      if (message.type === "approval_needed" || message.type === "approval_decided") {
        signalAndSettle("fn-approvals-changed");
      }
    },
    {
      // Anything missed while disconnected: fetch the current state once.
      onOpen: () => signal("fn-approvals-changed"),
    },
  );
}

// Our pages answer htmx with fragments for refusals too (400 a bad edit, 403 not yours to decide, 409 already
// decided), and base.html's htmx-config swaps them in. With DEBUG on, django-htmx's helper treats any 400/403
// as a Django error page and replaces the whole document with it. Hiding the event from it (captured before
// it reaches the document) keeps our fragments where htmx puts them; real error pages (a whole HTML document)
// still reach the helper.
document.addEventListener(
  "htmx:beforeOnLoad",
  (event) => {
    const xhr = event.detail && event.detail.xhr;
    if (!xhr || (xhr.status !== 400 && xhr.status !== 403)) return;
    const body = typeof xhr.response === "string" ? xhr.response.trimStart().slice(0, 200).toLowerCase() : "";
    if (!body.startsWith("<!doctype") && !body.startsWith("<html")) event.stopPropagation();
  },
  true,
);

// A live part (an element re-fetched on fn-* signals) can also be redrawn by what the user does in it: a
// decision, a page of the inbox. A refresh must not win over that, whichever answer comes back first: one
// answered first would replace the part, and the user's answer, aimed at the element it replaced, would be
// lost (the notice, the page asked for). So while the user's request is in flight, refreshes of that part are
// not sent, and a refresh sent before it is not swapped in; the user's answer redraws the part anyway.
const userActions = new Map(); // live part id -> {pending, generation}
function livePart(element) {
  return element && element.id && (element.getAttribute("hx-trigger") || "").includes("fn-") ? element : null;
}
function actionsOn(id) {
  if (!userActions.has(id)) userActions.set(id, { pending: 0, generation: 0 });
  return userActions.get(id);
}
document.addEventListener("htmx:beforeRequest", (event) => {
  const { elt, target, xhr } = event.detail;
  const part = livePart(target);
  if (!part || !xhr || elt !== part) return; // only the part's own refresh
  const actions = actionsOn(part.id);
  if (actions.pending > 0) event.preventDefault();
  else xhr.fnGeneration = actions.generation;
});
// Counted once the request is really sent (no listener can cancel it any more), so that afterRequest, which
// follows every sent request (answered, failed or aborted), always uncounts it.
document.addEventListener("htmx:beforeSend", (event) => {
  const { elt, target, xhr } = event.detail;
  const part = livePart(target);
  if (!part || !xhr || elt === part) return;
  const actions = actionsOn(part.id);
  actions.pending += 1;
  actions.generation += 1;
  xhr.fnUserAction = part.id;
});
document.addEventListener("htmx:afterRequest", (event) => {
  const id = event.detail.xhr && event.detail.xhr.fnUserAction;
  if (id) actionsOn(id).pending = Math.max(0, actionsOn(id).pending - 1);
});
document.addEventListener("htmx:beforeSwap", (event) => {
  const { xhr, target } = event.detail;
  if (!xhr || xhr.fnGeneration === undefined || !target || !target.id) return;
  if (xhr.fnGeneration !== actionsOn(target.id).generation) {
    event.detail.shouldSwap = false;
    return;
  }
  xhr.fnFieldErrors = shownFieldErrors(target);
});

// The error the server put beside a field the user typed in (an approval's edit that is not JSON) belongs to
// what was typed, which a refresh keeps (hx-preserve) but the server no longer knows of: a refresh puts the
// error back beside the same field while the field still holds what was refused.
function shownFieldErrors(part) {
  return [...part.querySelectorAll(".field.has-error")].flatMap((field) => {
    const input = field.querySelector("textarea, input");
    const error = field.querySelector(".field-error");
    return input && input.id && error ? [{ id: input.id, value: input.value, text: error.textContent }] : [];
  });
}
document.addEventListener("htmx:afterSwap", (event) => {
  for (const shown of (event.detail.xhr && event.detail.xhr.fnFieldErrors) || []) {
    const input = document.getElementById(shown.id);
    const error = document.getElementById(`${shown.id}-error`);
    if (!input || !error || input.value !== shown.value || error.textContent.trim()) continue;
    error.textContent = shown.text;
    error.setAttribute("role", "alert");
    input.closest(".field")?.classList.add("has-error");
  }
});

function start() {
  const runPage = document.getElementById("run-page");
  if (runPage) watchRun(runPage);
  if (document.querySelector("[data-live-approvals]")) watchApprovals();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
