// The marketing pages: the line picker shows the chosen line at once. Everything works without
// this file (plain forms); no inline script (the pages' CSP).
"use strict";

document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});
