// The marketing pages: the line picker shows the chosen line at once, and deleting a tip asks
// first. Everything works without this file (plain forms); no inline script (the pages' CSP).
"use strict";

document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});

document.querySelectorAll("form[data-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
});
