// Shows a build's log in <pre id="log" data-src=...>; with ?follow=true the server keeps the
// response open while the build runs and each chunk is appended as it arrives. Without
// JavaScript the page links to the log instead.
(function () {
  "use strict";
  var pre = document.getElementById("log");
  if (!pre || !window.fetch || !window.TextDecoder) return;
  pre.hidden = false;
  var follow = pre.dataset.src.indexOf("follow=true") !== -1;
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
          if (follow) pre.textContent += "\n— end of log; reload the page for the final status —\n";
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
    pre.textContent += "\nLost the connection to the server; reload the page to see the rest.";
  });
})();
