// The viewer of `netpol report`: draws the embedded data. Every answer was
// computed by netpol; nothing here decides what is allowed.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("report-data").textContent);
  var graph = data.graph;

  function el(tag, attributes, children) {
    var node = document.createElement(tag);
    if (attributes) {
      Object.keys(attributes).forEach(function (key) {
        if (key === "text") {
          node.textContent = attributes[key];
        } else if (key === "class") {
          node.className = attributes[key];
        } else {
          node.setAttribute(key, attributes[key]);
        }
      });
    }
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function percent(part, whole) {
    return whole === 0 ? 0 : Math.round((100 * part) / whole);
  }

  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : many);
  }

  function cssVariable(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // --- header and summary -------------------------------------------------

  document.getElementById("source").textContent = "Read: " + (data.source || "standard input");
  document.getElementById("generator").textContent = data.generator;
  document.getElementById("options").textContent = "Model options: " + data.options;

  (function summary() {
    var s = data.summary;
    var cards = document.getElementById("summary-cards");
    function card(value, label, extra) {
      cards.appendChild(el("div", { class: "card" }, [
        el("div", { class: "value", text: String(value) }),
        el("div", { class: "label", text: label }),
        extra || null,
      ]));
    }
    function share(part) {
      var value = percent(part, s.endpoints);
      return el("div", { class: "bar", title: part + " of " + s.endpoints }, [
        el("span", { class: value < 50 ? "low" : "", style: "width:" + value + "%" }),
      ]);
    }
    card(s.namespaces, "namespaces");
    card(s.workloads, "workloads");
    if (s.pod_templates === 0) {
      card(s.pods, "pods");
    } else if (s.pods === 0) {
      card(s.pod_templates, "workload templates standing for their pods (no Pod objects read)");
    } else {
      card(s.pods + s.pod_templates, s.pods + " pods and " + plural(s.pod_templates, "workload template", "workload templates") + " standing for their pods");
    }
    card(s.policies, "network policies");
    card(percent(s.isolated_ingress, s.endpoints) + "%",
      "isolated for ingress (" + s.isolated_ingress + " of " + s.endpoints + ")", share(s.isolated_ingress));
    card(percent(s.isolated_egress, s.endpoints) + "%",
      "isolated for egress (" + s.isolated_egress + " of " + s.endpoints + ")", share(s.isolated_egress));
    card(s.reachable_from_outside, "reachable from outside the cluster");
    var badges = el("div", { class: "badges" }, [
      el("span", { class: "badge error", text: plural(s.findings.error, "error", "errors") }),
      el("span", { class: "badge warning", text: plural(s.findings.warning, "warning", "warnings") }),
      el("span", { class: "badge info", text: s.findings.info + " info" }),
    ]);
    card(s.findings.error + s.findings.warning + s.findings.info, "findings", badges);
  })();

  // --- findings ------------------------------------------------------------

  (function findings() {
    var body = document.querySelector("#findings-table tbody");
    var shown = { error: true, warning: true, info: true };
    if (data.findings.length === 0) {
      document.getElementById("no-findings").hidden = false;
      document.getElementById("findings-table").hidden = true;
    }
    var rows = [];
    data.findings.forEach(function (finding) {
      var row = el("tr", { class: "finding " + finding.severity, "data-severity": finding.severity }, [
        el("td", {}, [el("span", { class: "badge " + finding.severity, text: finding.severity })]),
        el("td", {}, [
          el("div", { class: "rule-code", text: finding.code }),
          el("div", { class: "rule-name", text: finding.rule }),
        ]),
        el("td", { text: finding.message }),
        el("td", { class: "where" }, [
          finding.location ? el("div", { class: "mono", text: finding.location }) : null,
          finding.about ? el("div", { text: finding.about }) : null,
        ]),
      ]);
      var detail = el("tr", { class: "detail" }, [el("td", { colspan: "4" }, [
        finding.snippet ? snippet(finding.snippet) : null,
        finding.help ? el("p", { class: "help" }, [el("strong", { text: "help: " }), finding.help]) : null,
        el("p", { class: "small muted", text: "netpol rules " + finding.code + " explains this rule." }),
      ])]);
      detail.hidden = true;
      row.addEventListener("click", function () { detail.hidden = !detail.hidden; });
      body.appendChild(row);
      body.appendChild(detail);
      rows.push({ row: row, detail: detail, severity: finding.severity });
    });

    var filters = document.getElementById("severity-filters");
    ["error", "warning", "info"].forEach(function (severity) {
      var count = data.summary.findings[severity];
      var button = el("button", { type: "button", "aria-pressed": "true", text: severity + " (" + count + ")" });
      button.addEventListener("click", function () {
        shown[severity] = !shown[severity];
        button.setAttribute("aria-pressed", String(shown[severity]));
        rows.forEach(function (entry) {
          entry.row.hidden = !shown[entry.severity];
          if (!shown[entry.severity]) { entry.detail.hidden = true; }
        });
      });
      filters.appendChild(button);
    });
  })();

  function snippet(view) {
    var box = el("div", { class: "snippet" });
    view.lines.forEach(function (entry) {
      var number = entry[0], text = entry[1];
      var target = number === view.line;
      box.appendChild(el("div", { class: "line" + (target ? " target" : "") }, [
        el("span", { class: "number", text: String(number) }),
        el("span", { text: text }),
      ]));
      if (target) {
        var pad = new Array(view.column).join(" ");
        box.appendChild(el("div", { class: "line" }, [
          el("span", { class: "number", text: "" }),
          el("span", { class: "underline", text: pad + new Array(view.width + 1).join("^") }),
        ]));
      }
    });
    return box;
  }

  // --- heat map --------------------------------------------------------------

  var namespaceFilter = document.getElementById("namespace-filter");

  (function heatMap() {
    var h = data.heatmap;
    var table = document.getElementById("heatmap-table");
    var low = cssVariable("--heat-0"), high = cssVariable("--heat-1");
    function mix(share) {
      var a = parseColor(low), b = parseColor(high);
      var c = a.map(function (value, i) { return Math.round(value + (b[i] - value) * share); });
      return "rgb(" + c.join(",") + ")";
    }
    var head = el("tr", {}, [el("th", { text: "from \\ to" })]);
    h.namespaces.forEach(function (name) { head.appendChild(el("th", { scope: "col", text: name })); });
    head.appendChild(el("th", { scope: "col", text: "outside" }));
    table.appendChild(el("thead", {}, [head]));
    var body = el("tbody");
    function cell(allowed, pairs, title, className, namespace) {
      if (pairs === 0) {
        return el("td", { class: "empty-cell " + (className || ""), title: title + ": no pairs", text: "–" });
      }
      var share = allowed / pairs;
      var td = el("td", {
        class: className || "",
        title: title + ": " + allowed + " of " + pairs + " pairs may connect (" + percent(allowed, pairs) + "%)",
        style: "background:" + mix(share) + (share > 0.55 ? ";color:#fff" : ""),
        text: percent(allowed, pairs) + "%",
      });
      if (namespace) {
        td.addEventListener("click", function () {
          namespaceFilter.value = namespace;
          namespaceFilter.dispatchEvent(new Event("change"));
          document.getElementById("graph-section").scrollIntoView({ behavior: "smooth" });
        });
      }
      return td;
    }
    h.namespaces.forEach(function (from, i) {
      var row = el("tr", {}, [el("th", { scope: "row", text: from })]);
      h.namespaces.forEach(function (to, j) {
        row.appendChild(cell(h.allowed[i][j], h.pairs[i][j], from + " → " + to, "", from));
      });
      row.appendChild(cell(h.to_outside[i], h.endpoints[i], from + " → outside (pods that may reach some outside address)", "outside", from));
      body.appendChild(row);
    });
    var outsideRow = el("tr", {}, [el("th", { scope: "row", text: "outside" })]);
    h.namespaces.forEach(function (to, j) {
      outsideRow.appendChild(cell(h.from_outside[j], h.endpoints[j], "outside → " + to + " (pods some outside address may reach)", "outside", to));
    });
    outsideRow.appendChild(el("td", { class: "empty-cell" }));
    body.appendChild(outsideRow);
    table.appendChild(body);
  })();

  function parseColor(text) {
    var hex = /^#([0-9a-f]{6})$/i.exec(text);
    if (hex) {
      var n = parseInt(hex[1], 16);
      return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
    }
    var rgb = /rgba?\(([^)]+)\)/.exec(text);
    if (rgb) {
      return rgb[1].split(",").slice(0, 3).map(function (v) { return parseFloat(v); });
    }
    return [128, 128, 128];
  }

  // --- graph -------------------------------------------------------------------

  var OUTSIDE = "outside";
  var byId = {};
  graph.workloads.forEach(function (workload) { byId[workload.id] = workload; });
  var namespaces = [];
  graph.workloads.forEach(function (workload) {
    if (namespaces.indexOf(workload.namespace) < 0) { namespaces.push(workload.namespace); }
  });
  var palette = ["#2f6fde", "#d9480f", "#2f855a", "#8e44ad", "#b7791f", "#0e8a9a", "#c2185b", "#5d6b7c", "#6b8e23", "#7b5cd6"];
  function namespaceColor(namespace) {
    return palette[namespaces.indexOf(namespace) % palette.length];
  }

  var namespaceLegend = document.getElementById("namespace-legend");
  namespaces.forEach(function (namespace) {
    namespaceLegend.appendChild(el("span", {}, [
      el("i", { class: "dot", style: "background:" + namespaceColor(namespace) }), namespace,
    ]));
  });

  namespaceFilter.appendChild(el("option", { value: "", text: "All namespaces" }));
  namespaces.forEach(function (namespace) {
    namespaceFilter.appendChild(el("option", { value: namespace, text: namespace }));
  });

  var graphBox = document.getElementById("graph");
  var note = document.getElementById("graph-note");
  var panel = document.getElementById("panel");
  var cy = null;

  function isolationClass(workload) {
    var ingress = workload.ingress.isolated > 0, egress = workload.egress.isolated > 0;
    if (ingress && egress) { return "isolated-both"; }
    if (ingress || egress) { return "isolated-some"; }
    return "open";
  }

  function shortName(workload) {
    return workload.name.slice(workload.namespace.length + 1);
  }

  // The elements to draw: every workload, or one namespace's and their peers.
  function elements(namespace, showOutside) {
    var included = {};
    graph.workloads.forEach(function (workload) {
      if (!namespace || workload.namespace === namespace) { included[workload.id] = true; }
    });
    var edges = graph.edges.filter(function (edge) {
      if (!showOutside && (edge.from === OUTSIDE || edge.to === OUTSIDE)) { return false; }
      return included[edge.from] || included[edge.to];
    });
    var nodes = {};
    edges.forEach(function (edge) { nodes[edge.from] = true; nodes[edge.to] = true; });
    Object.keys(included).forEach(function (id) { nodes[id] = true; });
    var result = [];
    Object.keys(nodes).forEach(function (id) {
      if (id === OUTSIDE) {
        result.push({ group: "nodes", data: { id: OUTSIDE, label: "outside the cluster" }, classes: "outside" });
        return;
      }
      var workload = byId[id];
      result.push({
        group: "nodes",
        data: {
          id: id,
          label: shortName(workload) + (workload.endpoints > 1 ? " ×" + workload.endpoints : ""),
          color: namespaceColor(workload.namespace),
        },
        classes: "workload " + isolationClass(workload) + (included[id] ? "" : " peer"),
      });
    });
    edges.forEach(function (edge, index) {
      result.push({
        group: "edges",
        data: { id: "e" + graph.edges.indexOf(edge), source: edge.from, target: edge.to, label: edge.ports },
        classes: edge.from === OUTSIDE || edge.to === OUTSIDE ? "to-outside" : "",
      });
      return index;
    });
    return result;
  }

  function style() {
    var text = cssVariable("--text"), muted = cssVariable("--muted"), surface = cssVariable("--surface");
    var ok = cssVariable("--ok"), warning = cssVariable("--warning"), error = cssVariable("--error");
    var accent = cssVariable("--accent");
    return [
      { selector: "node", style: { "label": "data(label)", "font-size": 13, "color": text, "text-valign": "bottom", "text-margin-y": 4, "text-wrap": "wrap", "text-max-width": 140 } },
      { selector: "node.workload", style: { "background-color": "data(color)", "width": 30, "height": 30, "border-width": 2, "border-color": muted } },
      { selector: "node.isolated-both", style: { "border-width": 4, "border-color": ok } },
      { selector: "node.isolated-some", style: { "border-width": 4, "border-color": warning, "border-style": "dashed" } },
      { selector: "node.peer", style: { "opacity": 0.55 } },
      { selector: "node.outside", style: { "shape": "diamond", "background-color": error, "width": 28, "height": 28 } },
      { selector: "edge", style: { "width": 1.5, "line-color": muted, "target-arrow-color": muted, "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "data(label)", "font-size": 11, "color": text, "text-rotation": "autorotate", "text-background-color": surface, "text-background-opacity": 0.85, "text-background-padding": 2, "opacity": 0.8 } },
      { selector: "edge.to-outside", style: { "line-style": "dashed", "line-color": error, "target-arrow-color": error } },
      { selector: ".faded", style: { "opacity": 0.12 } },
      { selector: "node.match", style: { "border-color": accent, "border-width": 5 } },
      { selector: "node:selected", style: { "border-color": accent, "border-width": 6 } },
      { selector: "edge:selected", style: { "line-color": accent, "target-arrow-color": accent, "width": 3, "opacity": 1 } },
    ];
  }

  function draw() {
    var namespace = namespaceFilter.value;
    var showOutside = document.getElementById("show-outside").checked;
    var tooMany = !namespace && graph.workloads.length > graph.draw_all_up_to;
    var notes = [];
    if (graph.omitted_open_edges > 0) {
      notes.push(graph.omitted_open_edges + " connections between workloads that no policy isolates are not drawn (every port is allowed there).");
    }
    if (tooMany) {
      notes.push("There are " + graph.workloads.length + " workloads: pick a namespace to draw its workloads and their peers.");
    }
    note.textContent = notes.join(" ");
    if (cy) { cy.destroy(); cy = null; }
    var drawn = tooMany ? [] : elements(namespace, showOutside);
    cy = cytoscape({
      container: graphBox,
      elements: drawn,
      style: style(),
      minZoom: 0.05,
      maxZoom: 4,
    });
    var workloadCount = cy.nodes(".workload").length;
    var layout = workloadCount <= 600
      ? { name: "cose", animate: false, randomize: false, nodeDimensionsIncludeLabels: true, idealEdgeLength: function () { return 80; }, nodeRepulsion: function () { return 200000; }, nodeOverlap: 20, nestingFactor: 1.2, gravity: 1, numIter: 3000, componentSpacing: 80, padding: 20 }
      : { name: "concentric", animate: false, concentric: function (node) { return node.degree(); }, levelWidth: function () { return 4; }, padding: 30 };
    if (layout.name === "cose") {
      // Start from a circle, not random positions: the same page draws the
      // same picture every time it is opened.
      cy.layout({ name: "circle", animate: false }).run();
    }
    cy.layout(layout).run();
    cy.fit(undefined, 30);
    if (cy.zoom() > 1.3) {
      // A small graph is not blown up to fill the box.
      cy.zoom(1.3);
      cy.center();
    }
    cy.on("tap", "node.workload", function (event) { showWorkload(event.target.id()); });
    cy.on("tap", "node.outside", function () { showOutside(); });
    cy.on("tap", "edge", function (event) { showEdge(graph.edges[Number(event.target.id().slice(1))]); });
    // What was really drawn, for tests and for the reader's benefit.
    graphBox.setAttribute("data-rendered-nodes", String(workloadCount));
    graphBox.setAttribute("data-rendered-edges", String(cy.edges().length));
    applySearch();
  }

  function ruleLine(reference) {
    var rule = graph.rules[reference[0]];
    var policy = graph.policies[rule.policy];
    return el("div", { class: "why" }, [
      el("code", { text: policy.name + " " + rule.rule }),
      " allows " + reference[1],
      rule.source ? el("span", { class: "mono", text: " (" + rule.source + ")" }) : null,
    ]);
  }

  function sideLines(side, label) {
    var lines = [];
    side.unrestricted.forEach(function (reason) {
      lines.push(el("div", { class: "why", text: label + ": " + reason }));
    });
    side.rules.forEach(function (reference) {
      var line = ruleLine(reference);
      line.insertBefore(document.createTextNode(label + ": "), line.firstChild);
      lines.push(line);
    });
    return lines;
  }

  function peerName(id) {
    return id === OUTSIDE ? "outside the cluster" : byId[id].name;
  }

  function connectionItem(edge, peer) {
    var details = [
      el("div", {}, [el("span", { class: "peer", text: peerName(peer) }), " ", el("span", { class: "ports", text: edge.ports })]),
    ];
    if (edge.addresses) { details.push(el("div", { class: "why", text: "addresses: " + edge.addresses })); }
    if (edge.pairs && edge.pairs[0] !== edge.pairs[1]) {
      details.push(el("div", { class: "why", text: edge.pairs[0] + " of " + edge.pairs[1] + " pod pairs" }));
    }
    sideLines(edge.egress, "egress").concat(sideLines(edge.ingress, "ingress")).forEach(function (line) { details.push(line); });
    return el("li", {}, details);
  }

  function policyList(isolation, members, direction) {
    if (isolation.isolated === 0) {
      return el("p", {}, [el("span", { class: "tag open", text: "not isolated" }), "no policy selects it for " + direction + ": every " + (direction === "ingress" ? "source" : "destination") + " is allowed"]);
    }
    var list = el("ul");
    isolation.policies.forEach(function (index) {
      var policy = graph.policies[index];
      list.appendChild(el("li", {}, [el("code", { text: policy.name }), policy.source ? el("div", { class: "why mono", text: policy.source }) : null]));
    });
    return el("div", {}, [
      el("p", {}, [el("span", { class: "tag isolated", text: "isolated" }),
        (isolation.isolated === members ? "" : isolation.isolated + " of " + members + " pods; ") + "by " + plural(isolation.policies.length, "policy", "policies") + ":"]),
      list,
    ]);
  }

  function showWorkload(id) {
    var workload = byId[id];
    var incoming = graph.edges.filter(function (edge) { return edge.to === id; });
    var outgoing = graph.edges.filter(function (edge) { return edge.from === id; });
    var receive = el("ul");
    incoming.forEach(function (edge) { receive.appendChild(connectionItem(edge, edge.from)); });
    var send = el("ul");
    outgoing.forEach(function (edge) { send.appendChild(connectionItem(edge, edge.to)); });
    panel.replaceChildren(
      el("h3", { text: workload.name }),
      el("div", { class: "muted", text: workload.kind + ", " + plural(workload.endpoints, "pod", "pods") }),
      el("h4", { text: "Ingress" }), policyList(workload.ingress, workload.endpoints, "ingress"),
      el("h4", { text: "May receive from (" + incoming.length + ")" }),
      incoming.length ? receive : el("p", { class: "muted", text: "nothing" }),
      el("h4", { text: "Egress" }), policyList(workload.egress, workload.endpoints, "egress"),
      el("h4", { text: "May send to (" + outgoing.length + ")" }),
      outgoing.length ? send : el("p", { class: "muted", text: "nothing" })
    );
    panel.setAttribute("data-workload", workload.name);
    try {
      window.history.replaceState(null, "", "#workload=" + encodeURIComponent(workload.name));
    } catch (refused) {
      // Some browsers refuse history changes on file: pages; the link is a nicety.
    }
  }

  function showOutside() {
    var incoming = graph.edges.filter(function (edge) { return edge.from === OUTSIDE; });
    var outgoing = graph.edges.filter(function (edge) { return edge.to === OUTSIDE; });
    var reach = el("ul"), reached = el("ul");
    incoming.forEach(function (edge) { reach.appendChild(connectionItem(edge, edge.to)); });
    outgoing.forEach(function (edge) { reached.appendChild(connectionItem(edge, edge.from)); });
    panel.replaceChildren(
      el("h3", { text: "Outside the cluster" }),
      el("p", { class: "muted", text: "Addresses that are no pod's. No policy applies to them: the workload's side decides." }),
      el("h4", { text: "May reach (" + incoming.length + ")" }), reach,
      el("h4", { text: "May be reached by (" + outgoing.length + ")" }), reached
    );
    panel.setAttribute("data-workload", OUTSIDE);
  }

  function showEdge(edge) {
    var items = [
      el("h3", { text: peerName(edge.from) + " → " + peerName(edge.to) }),
      el("p", {}, [el("span", { class: "ports", text: edge.ports })]),
    ];
    if (edge.addresses) { items.push(el("p", { class: "muted", text: "addresses: " + edge.addresses })); }
    if (edge.pairs) { items.push(el("p", { class: "muted", text: edge.pairs[0] + " of " + edge.pairs[1] + " pod pairs may connect" })); }
    items.push(el("h4", { text: "Egress of " + peerName(edge.from) }));
    sideLines(edge.egress, "egress").forEach(function (line) { items.push(line); });
    items.push(el("h4", { text: "Ingress of " + peerName(edge.to) }));
    sideLines(edge.ingress, "ingress").forEach(function (line) { items.push(line); });
    panel.replaceChildren.apply(panel, items);
  }

  var search = document.getElementById("search");
  function applySearch() {
    if (!cy) { return; }
    var text = search.value.trim().toLowerCase();
    cy.elements().removeClass("faded match");
    if (!text) { return; }
    var matches = cy.nodes(".workload").filter(function (node) {
      return byId[node.id()].name.toLowerCase().indexOf(text) >= 0;
    });
    var keep = matches.union(matches.connectedEdges()).union(matches.neighborhood());
    cy.elements().difference(keep).addClass("faded");
    matches.addClass("match");
  }
  search.addEventListener("input", applySearch);
  search.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && cy) {
      var first = cy.nodes(".match").first();
      if (first.length) {
        cy.animate({ center: { eles: first }, zoom: 1.4 }, { duration: 250 });
        showWorkload(first.id());
      }
    }
  });
  namespaceFilter.addEventListener("change", draw);
  document.getElementById("show-outside").addEventListener("change", draw);
  document.getElementById("fit").addEventListener("click", function () { if (cy) { cy.fit(undefined, 30); } });

  // `#workload=ns/name` opens that workload's panel: a link to one answer.
  function openFromHash() {
    var match = /^#workload=(.+)$/.exec(window.location.hash);
    if (!match || !cy) { return; }
    var name = decodeURIComponent(match[1]);
    var found = graph.workloads.filter(function (workload) { return workload.name === name; })[0];
    if (!found) { return; }
    var node = cy.getElementById(found.id);
    if (node.length) {
      cy.nodes().unselect();
      node.select();
    }
    showWorkload(found.id);
    document.getElementById("graph-section").scrollIntoView();
  }
  window.addEventListener("hashchange", openFromHash);

  draw();
  openFromHash();
  document.body.setAttribute("data-ready", "true");
})();
