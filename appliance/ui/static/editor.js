// The environment editor (editor.html), enhanced: line numbers beside the text; a live check by
// the server (POST data-check: the same check as the form's Check button) that marks problem
// lines and, on Check, moves the cursor to the first; a package search over the API
// (data-packages: GET /api/v1/package/) whose Add buttons insert "- name" into the
// dependencies without reloading. Preview and Submit post the form as they do without
// JavaScript. The insertion mirrors appliance.services.drafts.add_dependency.
"use strict";
(() => {
  const form = document.getElementById("editor");
  const spec = document.getElementById("spec");
  const problems = document.getElementById("problems");
  const results = document.getElementById("search-results");
  if (!form || !spec || !problems || !window.fetch) return;

  // --- line numbers -------------------------------------------------------------------------
  const gutter = document.createElement("pre");
  gutter.className = "gutter";
  gutter.setAttribute("aria-hidden", "true");
  spec.before(gutter);
  let badLines = new Set();
  let shownLines = -1;
  const numberLines = (force) => {
    const count = spec.value.split("\n").length;
    if (count === shownLines && !force) return;
    shownLines = count;
    gutter.replaceChildren();
    for (let line = 1; line <= count; line++) {
      const number = document.createElement("span");
      number.textContent = String(line);
      if (badLines.has(line)) number.className = "bad";
      gutter.append(number, "\n");
    }
    gutter.scrollTop = spec.scrollTop;
  };
  spec.addEventListener("scroll", () => { gutter.scrollTop = spec.scrollTop; });

  const goToLine = (line) => {
    const lines = spec.value.split("\n");
    const index = Math.min(Math.max(line, 1), lines.length) - 1;
    let start = 0;
    for (let i = 0; i < index; i++) start += lines[i].length + 1;
    spec.focus();
    spec.setSelectionRange(start, start + lines[index].length);
    const height = parseFloat(getComputedStyle(spec).lineHeight) || 20;
    spec.scrollTop = Math.max(0, (index - 2) * height);
  };

  // --- problems -----------------------------------------------------------------------------
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const lineLink = (line) => {
    const link = element("a", "line-link", `Line ${line}`);
    link.href = "#spec";
    link.dataset.line = String(line);
    return link;
  };
  const say = (className, text) => {
    problems.replaceChildren(element("p", className, text));
  };
  const showProblems = (list, moveCursor) => {
    badLines = new Set(list.filter((p) => p.line).map((p) => p.line));
    spec.setAttribute("aria-invalid", list.length ? "true" : "false");
    numberLines(true);
    if (!list.length) {
      say("notice", "No problems: the server accepts this specification.");
      return;
    }
    const box = element("div", "problem");
    const head = element("p");
    const plural = list.length === 1 ? "" : "s";
    head.append(element("strong", "", `${list.length} problem${plural}`),
      " — the server would refuse this specification as it is:");
    const items = element("ul", "problems");
    for (const problem of list) {
      const item = element("li");
      if (problem.line) item.append(lineLink(problem.line), ": ");
      item.append(problem.message);
      items.append(item);
    }
    box.append(head, items);
    problems.replaceChildren(box);
    const first = list.find((p) => p.line);
    if (moveCursor && first) goToLine(first.line);
  };
  problems.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-line]");
    if (!link) return;
    event.preventDefault();
    goToLine(Number(link.dataset.line));
  });

  const draftFields = () => {
    const fields = new URLSearchParams();
    for (const name of ["csrf", "namespace", "environment"]) {
      if (form.elements[name]) fields.append(name, form.elements[name].value);
    }
    fields.append("specification", spec.value);
    return fields;
  };
  let checks = 0;
  const check = async (moveCursor) => {
    const mine = ++checks;
    try {
      const response = await fetch(form.dataset.check, {
        method: "POST", credentials: "same-origin", body: draftFields(),
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      if (mine === checks) showProblems(body.problems, moveCursor);
    } catch (error) {
      if (mine === checks) {
        say("problem", `The server could not check the specification (${error.message}); ` +
          "reload the page and try again.");
      }
    }
  };
  let pause = null;
  spec.addEventListener("input", () => {
    numberLines(false);
    clearTimeout(pause);
    pause = setTimeout(() => check(false), 1000);
  });

  // --- inserting a dependency (as drafts.add_dependency) ------------------------------------
  const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;
  const HEADER = /^dependencies\s*:(.*)$/;
  const ITEM = /^([ \t]*)-(?:[ \t]|$)/;
  const PIP = /^[ \t]*-[ \t]*['"]?pip['"]?[ \t]*:/;
  const ENTRY = /^[ \t]*-[ \t]*['"]?(?:[^\s:'"]+::)?([A-Za-z0-9_][A-Za-z0-9_.+-]*)/;
  const addDependency = (text, name) => {
    if (!NAME.test(name)) return { text, message: `'${name}' is not a package name`, added: false };
    const lines = text.split("\n");
    const header = lines.findIndex((line) => HEADER.test(line));
    if (header < 0) {
      const body = !text || text.endsWith("\n") ? text : `${text}\n`;
      const line = body.split("\n").length + 1;
      return { text: `${body}dependencies:\n  - ${name}\n`, line, added: true,
        message: `Added ${name} at line ${line}.` };
    }
    const rest = lines[header].match(HEADER)[1].trim();
    if (rest === "[]" || (rest.startsWith("[]") && rest.slice(2).trim().startsWith("#"))) {
      lines[header] = "dependencies:";
    } else if (rest && !rest.startsWith("#")) {
      return { text, line: header + 1, added: false,
        message: `The dependencies on line ${header + 1} are written on one line; add ${name} ` +
          "to that list yourself, or write one '- name' line per package." };
    }
    let indent = null;
    let at = header + 1;
    for (let index = header + 1; index < lines.length; index++) {
      const line = lines[index];
      if (!line.trim() || line.startsWith("#")) continue;
      if (!" \t-".includes(line[0])) break;
      const item = line.match(ITEM);
      if (item && indent === null) indent = item[1];
      if (item && item[1] === indent) {
        if (PIP.test(line)) break;
        const entry = line.match(ENTRY);
        if (entry && entry[1].toLowerCase() === name.toLowerCase()) {
          return { text, line: index + 1, added: false,
            message: `${name} is already a dependency (line ${index + 1}).` };
        }
      }
      at = index + 1;
    }
    lines.splice(at, 0, `${indent === null ? "  " : indent}- ${name}`);
    return { text: lines.join("\n"), line: at + 1, added: true,
      message: `Added ${name} at line ${at + 1}.` };
  };
  const searchStatus = element("p", "muted");
  searchStatus.setAttribute("role", "status");
  if (results) results.before(searchStatus);
  const insert = (name) => {
    const done = addDependency(spec.value, name);
    if (done.added) {
      spec.value = done.text;
      numberLines(true);
      check(false);
    }
    searchStatus.textContent = done.message;
  };

  // --- package search -----------------------------------------------------------------------
  const search = async () => {
    const text = form.elements.search.value.trim();
    if (!text) {
      searchStatus.textContent = "Type part of a package name to search for.";
      return;
    }
    searchStatus.textContent = "Searching…";
    const query = new URLSearchParams([["search", text], ["distinct_on", "name"],
      ["distinct_on", "version"], ["sort_by", "name"], ["size", "100"]]);
    try {
      const response = await fetch(`${form.dataset.packages}?${query}`,
        { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      const found = new Map();
      for (const row of body.data) {
        if (!found.has(row.name)) found.set(row.name, { versions: [], summary: row.summary });
        found.get(row.name).versions.push(row.version);
      }
      const list = element("ul", "found");
      for (const [name, entry] of [...found].slice(0, 20)) {
        const item = element("li");
        const add = element("button", "secondary", "Add");
        add.type = "submit";
        add.name = "action";
        add.value = `add:${name}`;
        add.setAttribute("aria-label", `Add ${name} to the dependencies`);
        item.append(element("span", "found-name", name),
          element("span", "muted", entry.versions.join(", ")));
        if (entry.summary) item.append(element("span", "found-summary", entry.summary));
        item.append(add);
        list.append(item);
      }
      results.replaceChildren(list);
      const more = found.size > 20 || body.count > body.data.length;
      searchStatus.textContent = found.size
        ? `${Math.min(found.size, 20)} package${found.size === 1 ? "" : "s"} found` +
          (more ? "; more match: type more of the name to narrow the search." : ".")
        : `No package of the indexed channels contains '${text}'.`;
    } catch (error) {
      searchStatus.textContent = `The search failed (${error.message}); try again.`;
    }
  };

  // --- the form's buttons -------------------------------------------------------------------
  let pressed = null;
  form.addEventListener("click", (event) => {
    const button = event.target.closest("button[name=action]");
    if (button) pressed = button;
  });
  form.addEventListener("submit", (event) => {
    const button = event.submitter || pressed;
    pressed = null;
    const action = button ? button.value : "search";
    if (action === "check") {
      event.preventDefault();
      check(true);
    } else if (action === "search") {
      event.preventDefault();
      search();
    } else if (action.startsWith("add:")) {
      event.preventDefault();
      insert(action.slice(4));
    }
  });

  numberLines(true);
  const first = problems.querySelector("a[data-line]");
  if (first) {
    badLines = new Set([...problems.querySelectorAll("a[data-line]")]
      .map((link) => Number(link.dataset.line)));
    numberLines(true);
  }
})();
