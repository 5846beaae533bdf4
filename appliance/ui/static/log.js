// Shows a build's log in <pre id="log" data-src=...>; with ?follow=true the server keeps the
// response open while the build runs and each chunk is appended as it arrives. Meanwhile the
// page's step timeline (#timeline) and facts (#build-facts) are refreshed from the page itself
// every few seconds, and when the followed log ends the page is reloaded to show the final
// status, packages and downloads. Without JavaScript the page links to the log instead.
(function () {
  "use strict";
  var pre = document.getElementById("log");
  if (!pre || !window.fetch || !window.TextDecoder) return;
  pre.hidden = false;
  var follow = pre.dataset.src.indexOf("follow=true") !== -1;
  var REFRESH_MS = 3000;
  var refreshing = null;

  // Replace the parts of this page that change while the build runs with their current HTML.
  function refresh() {
    if (!window.DOMParser) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ["timeline", "build-facts"].forEach(function (id) {
          var now = document.getElementById(id), then = fresh.getElementById(id);
          if (now && then) now.innerHTML = then.innerHTML;
        });
      })
      .catch(function () { /* the next refresh, or the reload at the end, catches up */ });
  }

  function ended() {
    if (refreshing !== null) window.clearInterval(refreshing);
    pre.textContent += "\n— end of log; loading the final status —\n";
    window.setTimeout(function () { window.location.reload(); }, 500);
  }

  if (follow) refreshing = window.setInterval(refresh, REFRESH_MS);
  pre.textContent = follow ? "Waiting for the log…\n" : "Loading the log…\n";
  fetch(pre.dataset.src, { credentials: "same-origin" }).then(function (response) {
    if (!response.ok) {
      pre.textContent = "The log is not available (HTTP " + response.status + ").";
      return;
    }
    pre.textContent = "";
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    function more() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          pre.textContent += decoder.decode();
          if (follow) ended();
          return;
        }
        var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent += decoder.decode(chunk.value, { stream: true });
        if (atEnd) pre.scrollTop = pre.scrollHeight;
        return more();
      });
    }
    return more();
  }).catch(function () {
    if (refreshing !== null) window.clearInterval(refreshing);
    pre.textContent += "\nLost the connection to the server; reload the page to see the rest.";
  });
})();
