// A form with data-confirm asks before it is sent (deleting a tip, cancelling a task). Without
// this file the form is sent at once; no inline script (the pages' CSP).
"use strict";

document.querySelectorAll("form[data-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
});
