// Kiln's form helpers, enhancing pages that work without them.
// A button with data-copy="ID" copies the text of the element ID (shown only when this runs).
"use strict";
for (const button of document.querySelectorAll("button[data-copy]")) {
  const source = document.getElementById(button.dataset.copy);
  const status = document.querySelector(`[data-copy-status="${button.dataset.copy}"]`);
  if (!source) continue;
  const say = (text) => { if (status) status.textContent = text; };
  button.hidden = false;
  button.addEventListener("click", async () => {
    const text = "value" in source ? source.value : source.textContent;
    try {
      await navigator.clipboard.writeText(text);
      say("Copied.");
    } catch {
      source.focus();
      if (source.select) source.select();
      say(document.execCommand && document.execCommand("copy")
        ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
    }
  });
}
