// Deciding an approval from a page (templates/approvals/_item.html). A refusal (400 bad edit, 403 not yours to
// decide) answers with a fragment that the htmx-config in base.html swaps in, message and all. With DEBUG on,
// django-htmx's helper listens on the document for 400/403 answers and replaces the whole page with them as if
// they were error pages; stopping the event while it is captured keeps that helper from seeing ours. htmx's
// own handling does not depend on listeners, so the fragment is still swapped.
// A module: however many times a swapped part includes it, it runs once per page.

document.addEventListener(
  "htmx:beforeOnLoad",
  (event) => {
    const form = event.target instanceof Element ? event.target.closest(".decide-form") : null;
    const status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    if (form && (status === 400 || status === 403)) event.stopPropagation();
  },
  true,
);
