// The support page: live countdowns to each deadline, and a reload when the queue changes.
// Plain JavaScript, no library; served by ringback (the pages' CSP allows no inline script).
(function () {
  "use strict";
  var POLL_MS = 5000;

  function span(ms) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60);
    var parts = [];
    if (days) parts.push(days + "d");
    if (days || hours) parts.push(hours + "h");
    parts.push((minutes % 60) + "m");
    return parts.join(" ");
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.dataset.deadline) - now;
      var task = el.closest(".task");
      if (left < 0) {
        el.textContent = el.dataset.overdueBy.replace("{span}", span(left));
        if (task) task.classList.add("overdue");
      } else {
        el.textContent = el.dataset.dueIn.replace("{span}", span(left));
      }
    });
  }

  function typing() {
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "SELECT")) return true;
    return Array.prototype.some.call(document.querySelectorAll(".task input[name=text], .task input[name=note]"),
                                     function (input) { return input.value !== ""; });
  }

  function poll() {
    var queue = document.querySelector(".queue[data-version]");
    if (!queue) return;
    fetch(queue.dataset.versionUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body && body.version !== queue.dataset.version && !typing()) {
          window.location.reload();
        }
      })
      .catch(function () { /* the server is away: try again at the next poll */ });
  }

  tick();
  setInterval(tick, 1000);
  setInterval(poll, POLL_MS);
})();
