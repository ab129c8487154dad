/* The report's one script, allowed by its hash in the page's Content-Security-Policy.

   It draws the accounts table from the JSON data block "report-data" (written by
   pipelines/report.py, accounts_payload): a page of rows at a time, filtered, searched and
   sorted, with an account's details opened on demand. Values from the data reach the page
   through textContent and setAttribute only, never as markup (the CSP's Trusted Types make
   an innerHTML assignment throw). The view lives in the address's # part, so a bookmark
   or a reload brings it back. It records errors first, so that a failure anywhere on the
   page lands in <html data-errors> for the browser tests. */
(function () {
  "use strict";
  var root = document.documentElement, errors = [];
  function record(message) {
    errors.push(String(message));
    root.setAttribute("data-errors", JSON.stringify(errors));
  }
  window.addEventListener("error", function (e) {
    record(e.message ? e.message + " (line " + e.lineno + ")"
                     : "failed to load " + (e.target && (e.target.src || e.target.href)));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { record("rejected: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    record("blocked by the page's policy: " + e.violatedDirective + " " + e.blockedURI);
  });

  var BANDS = ["red", "yellow", "green"];
  var BAND_LABEL = {red: "Red", yellow: "Yellow", green: "Green"};
  var BAND_RANK = {green: 0, yellow: 1, red: 2};  // the sort order of the band column
  var DAY_MS = 86400000;
  var PAGE_SIZES = [25, 50, 100, 200], PAGE_SIZE = 50;
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});

  var accounts = [];      // every account, in the book's order (priority, highest first)
  var pictures = null;    // account id -> base64 PNG, read when a detail first opens
  var state = null;       // the view: search, filters, sort, page, open account
  var view = [];          // the accounts the view selects, in its order
  var ordered = {key: "", rows: []};  // the book sorted by the view's sort, kept for reuse
  var asOfMs = 0, ui = {};

  // ------------------------------------------------------------------ helpers

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function readJson(id) { return JSON.parse(document.getElementById(id).textContent); }
  function count(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function money(x) {  // as report.py's _money: whole units with thousands separators
    if (x === null) { return "\u2013"; }
    var r = Math.round(x);
    return (r < 0 ? "-" : "") + count(Math.abs(r));
  }
  function pct(p) { return p === null ? "\u2013" : Math.round(p * 100) + "%"; }
  function isoDate(days) { return new Date(asOfMs + days * DAY_MS).toISOString().slice(0, 10); }
  function badge(className, text) { return el("span", "badge " + className, text); }
  function bandBadge(band) { return badge("badge-" + band, BAND_LABEL[band]); }
  function overdueBadge() { return badge("badge-overdue", "Overdue"); }
  function missing(v) { return v === null || v === ""; }

  // ------------------------------------------------------------------ data

  function load() {
    var data = readJson("report-data"), text = data.text, at = {};
    data.fields.forEach(function (name, k) { at[name] = k; });
    function word(i) { return i === null || i === undefined ? "" : text[i]; }
    asOfMs = Date.parse(data.asOf + "T00:00:00Z");
    accounts = data.rows.map(function (r, i) {
      var a = {
        i: i,
        id: r[at.id],
        name: r[at.name] || "",
        segment: word(r[at.segment]),
        csm: word(r[at.csm]),
        band: word(r[at.band]),
        health: r[at.health],
        probability: r[at.probability],
        arr: r[at.arr],
        priority: r[at.priority],
        renewal: r[at.renewal],
        overdue: r[at.overdue] === 1,
        drivers: r[at.drivers].map(word),
        protective: word(r[at.protective]),
        play: word(r[at.play]),
        change: word(r[at.change])
      };
      a.date = a.renewal === null ? "" : isoDate(a.renewal);
      a.month = a.date.slice(0, 7);
      a.search = (a.id + "\n" + a.name).toLowerCase();
      return a;
    });
  }

  // ------------------------------------------------------------------ columns

  // Per column (the data-key of its header): the value it sorts by ("" or null: missing,
  // sorted last both ways) and how a cell shows it. Headers say whether a sort is numeric.
  function textCell(field) {
    return {
      key: function (a) { return a[field]; },
      cell: function (a, td) { td.textContent = a[field]; }
    };
  }
  function numberCell(field, show) {
    return {
      key: function (a) { return a[field]; },
      cell: function (a, td) { td.textContent = show(a[field]); }
    };
  }
  var COLUMNS = {
    account: {
      key: function (a) { return a.id; },
      cell: function (a, td) {
        var b = el("button", "account-id", a.id);
        b.type = "button";
        b.setAttribute("aria-expanded", String(state.open === a.id));
        b.setAttribute("aria-label", "Details of account " + a.id);
        td.appendChild(b);
      }
    },
    name: textCell("name"),
    segment: textCell("segment"),
    csm: textCell("csm"),
    band: {
      key: function (a) { return BAND_RANK[a.band]; },
      cell: function (a, td) { td.appendChild(bandBadge(a.band)); }
    },
    health: numberCell("health", String),
    probability: numberCell("probability", pct),
    arr: numberCell("arr", money),
    // The book arrives in priority order: the row number sorts exactly, unrounded.
    priority: {
      key: function (a) { return a.priority === null ? null : -a.i; },
      cell: function (a, td) { td.textContent = money(a.priority); }
    },
    renewal: {
      key: function (a) { return a.renewal; },
      cell: function (a, td) {
        if (a.renewal === null) {
          if (a.overdue) { td.appendChild(overdueBadge()); }
          return;
        }
        td.appendChild(document.createTextNode(a.date));
        td.appendChild(el("br"));
        var when = el("span", "muted");
        if (a.overdue) {
          when.appendChild(overdueBadge());
          when.appendChild(document.createTextNode(" " + (-a.renewal) + " d ago"));
        } else {
          when.textContent = "in " + a.renewal + " d";
        }
        td.appendChild(when);
      }
    },
    drivers: {
      key: function (a) { return a.drivers.length ? a.drivers[0] : ""; },
      cell: function (a, td) {
        if (!a.drivers.length) { return; }
        var ul = el("ul");
        a.drivers.slice(0, 2).forEach(function (d) { ul.appendChild(el("li", "", d)); });
        if (a.drivers.length > 2) { ul.appendChild(el("li", "muted", "+" + (a.drivers.length - 2) + " more")); }
        td.appendChild(ul);
      }
    },
    play: textCell("play"),
    change: textCell("change")
  };

  function header(key) { return ui.table.querySelector('thead th[data-key="' + key + '"]'); }
  function isNumeric(key) { return header(key).getAttribute("data-sort-type") === "number"; }

  function sortedBook(key, dir) {
    var id = key + " " + dir;
    if (ordered.key === id) { return ordered.rows; }
    var value = COLUMNS[key].key, numeric = isNumeric(key), sign = dir === "asc" ? 1 : -1;
    var keyed = accounts.map(function (a) { return {a: a, v: value(a)}; });
    keyed.sort(function (x, y) {
      var mx = missing(x.v), my = missing(y.v);
      if (mx || my) { return mx === my ? x.a.i - y.a.i : (mx ? 1 : -1); }
      var c = numeric ? x.v - y.v : collator.compare(x.v, y.v);
      return c !== 0 ? sign * c : x.a.i - y.a.i;  // ties keep the book's order
    });
    ordered = {key: id, rows: keyed.map(function (k) { return k.a; })};
    return ordered.rows;
  }

  // ------------------------------------------------------------------ the view and the URL

  function defaults() {
    return {q: "", bands: [], segment: null, csm: null, renewal: null, overdue: false,
            sort: "priority", dir: "desc", page: 1, size: PAGE_SIZE, open: null};
  }
  // A filter's value: null for "all", else the text it must equal ("" for missing).
  var CHOICES = ["segment", "csm", "renewal"];

  function isState(hash) { return hash === "" || hash.indexOf("=") !== -1; }

  function parseState(hash) {
    var p = new URLSearchParams(hash), s = defaults();
    s.q = p.get("q") || "";
    s.bands = BANDS.filter(function (b) { return (p.get("band") || "").split(",").indexOf(b) !== -1; });
    CHOICES.forEach(function (name) { s[name] = p.get(name); });
    s.overdue = p.get("overdue") === "1";
    if (COLUMNS.hasOwnProperty(p.get("sort"))) {
      s.sort = p.get("sort");
      s.dir = p.get("dir") === "desc" ? "desc" : "asc";
    }
    var size = parseInt(p.get("size"), 10), page = parseInt(p.get("page"), 10);
    if (PAGE_SIZES.indexOf(size) !== -1) { s.size = size; }
    if (page > 0) { s.page = page; }
    s.open = p.get("open");
    return s;
  }

  function hashOf(s) {
    var p = new URLSearchParams();
    if (s.q) { p.set("q", s.q); }
    if (s.bands.length) { p.set("band", s.bands.join(",")); }
    CHOICES.forEach(function (name) { if (s[name] !== null) { p.set(name, s[name]); } });
    if (s.overdue) { p.set("overdue", "1"); }
    if (s.sort !== "priority" || s.dir !== "desc") { p.set("sort", s.sort); p.set("dir", s.dir); }
    if (s.size !== PAGE_SIZE) { p.set("size", String(s.size)); }
    if (s.page !== 1) { p.set("page", String(s.page)); }
    if (s.open !== null) { p.set("open", s.open); }
    return p.toString();
  }

  function writeHash() {
    var hash = hashOf(state);
    if (hash === location.hash.slice(1)) { return; }
    // replaceState: no history entry per keystroke, no scroll, no hashchange event.
    try {
      history.replaceState(null, "", "#" + hash);
    } catch (e) {  // some browsers refuse it for file:// pages
      location.replace("#" + hash);
    }
  }

  function matches(a, s, q) {
    return (!q || a.search.indexOf(q) !== -1)
        && (!s.bands.length || s.bands.indexOf(a.band) !== -1)
        && (s.segment === null || a.segment === s.segment)
        && (s.csm === null || a.csm === s.csm)
        && (s.renewal === null || a.month === s.renewal)
        && (!s.overdue || a.overdue);
  }

  function filtered(s) {
    return s.q || s.bands.length || s.overdue || CHOICES.some(function (n) { return s[n] !== null; });
  }

  // ------------------------------------------------------------------ drawing

  function accountRow(a, n) {
    var tr = el("tr", "account" + (n % 2 ? " alt" : "") + (state.open === a.id ? " open" : ""));
    tr.setAttribute("data-account-id", a.id);
    ui.columns.forEach(function (key) {
      var td = el("td", ui.classes[key]);
      COLUMNS[key].cell(a, td);
      tr.appendChild(td);
    });
    return tr;
  }

  function section(box, title, note) {
    var h = el("h4", "", title);
    if (note) { h.appendChild(document.createTextNode(" ")); h.appendChild(el("span", "muted", note)); }
    box.appendChild(h);
  }

  function detailRow(a) {
    var tr = el("tr", "detail"), td = el("td");
    tr.setAttribute("data-detail-of", a.id);
    td.colSpan = ui.columns.length;
    tr.appendChild(td);

    var head = el("div", "detail-head");
    head.appendChild(bandBadge(a.band));
    if (a.overdue) { head.appendChild(overdueBadge()); }
    head.appendChild(el("strong", "", a.name || a.id));
    head.appendChild(el("span", "muted", [a.id, a.segment, a.csm].filter(Boolean).join(" \u00b7 ")));
    var due = "";
    if (a.overdue) {
      due = a.date ? " \u00b7 renewal overdue since " + a.date : " \u00b7 renewal overdue";
    } else if (a.date) {
      due = " \u00b7 renews " + a.date;
    }
    head.appendChild(el("span", "facts", pct(a.probability) + " churn \u00b7 health " + a.health
                                         + " \u00b7 ARR " + money(a.arr) + due));
    td.appendChild(head);

    var body = el("div", "account-body"), words = el("div", "account-words");
    section(words, "Drivers", "(associations the model found, not proven causes)");
    var ol = el("ol", "drivers");
    (a.drivers.length ? a.drivers : ["None recorded."]).forEach(function (d) {
      ol.appendChild(el("li", "", d));
    });
    words.appendChild(ol);
    if (a.protective) {
      section(words, "Protective factor", "(what speaks for renewal)");
      words.appendChild(el("p", "protective", a.protective));
    }
    section(words, "Recommended play");
    words.appendChild(el("p", "play", a.play || "None."));
    section(words, "Change since the last scoring run");
    words.appendChild(el("p", "change", a.change || "Nothing recorded: a first run, or no driver moved."));
    var close = el("button", "plain", "Close");
    close.type = "button";
    close.setAttribute("data-close", "");
    words.appendChild(close);
    body.appendChild(words);

    if (pictures === null) { pictures = readJson("report-waterfalls"); }
    if (Object.prototype.hasOwnProperty.call(pictures, a.id)) {
      var figure = el("figure"), img = el("img");
      img.alt = "SHAP waterfall of account " + a.id;
      img.src = "data:image/png;base64," + pictures[a.id];
      figure.appendChild(img);
      figure.appendChild(el("figcaption", "", "How each feature moved this account's churn score "
                                              + "away from the average account (SHAP waterfall)."));
      body.appendChild(figure);
    } else {
      body.appendChild(el("p", "note", "No SHAP waterfall is embedded for this account: the "
                                       + "report carries them for the accounts of highest "
                                       + "priority. churn explain " + a.id + " draws one."));
    }
    td.appendChild(body);
    return tr;
  }

  function render() {
    var s = state, q = s.q.trim().toLowerCase();
    view = sortedBook(s.sort, s.dir).filter(function (a) { return matches(a, s, q); });
    var pages = Math.max(1, Math.ceil(view.length / s.size));
    s.page = Math.min(Math.max(1, s.page), pages);
    var start = (s.page - 1) * s.size, shown = view.slice(start, start + s.size);
    if (s.open !== null && !shown.some(function (a) { return a.id === s.open; })) { s.open = null; }

    var rows = document.createDocumentFragment();
    shown.forEach(function (a, n) {
      rows.appendChild(accountRow(a, n));
      if (s.open === a.id) { rows.appendChild(detailRow(a)); }
    });
    if (!shown.length) {
      var tr = el("tr"), td = el("td", "empty", "No account matches the search and filters.");
      td.colSpan = ui.columns.length;
      tr.appendChild(td);
      rows.appendChild(tr);
    }
    ui.body.textContent = "";
    ui.body.appendChild(rows);

    var of = filtered(s) ? " matching the search and filters (of " + count(accounts.length) + ")" : "";
    ui.status.textContent = view.length
      ? "Showing " + count(start + 1) + "\u2013" + count(start + shown.length) + " of "
        + count(view.length) + " accounts" + of + "."
      : "No account matches the search and filters (of " + count(accounts.length) + ").";
    ui.pageInfo.textContent = "Page " + count(s.page) + " of " + count(pages);
    ui.pager.first.disabled = ui.pager.previous.disabled = s.page === 1;
    ui.pager.next.disabled = ui.pager.last.disabled = s.page === pages;
    ui.table.querySelectorAll("thead th").forEach(function (th) {
      if (th.getAttribute("data-key") === s.sort) {
        th.setAttribute("aria-sort", s.dir === "asc" ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }

  // The controls show the state (on load, and when the address changes by hand).
  function showState() {
    ui.search.value = state.q;
    ui.bands.forEach(function (b) {
      b.setAttribute("aria-pressed", String(state.bands.indexOf(b.getAttribute("data-band")) !== -1));
    });
    CHOICES.forEach(function (name) {
      var select = ui.choices[name];
      if (!select) { return; }
      var value = state[name] === null ? "" : "=" + state[name];
      var known = Array.prototype.some.call(select.options, function (o) { return o.value === value; });
      if (!known) {  // a bookmarked value this report does not have (a CSM with no renewals)
        var option = el("option", "", (state[name] || "(none)") + " (0)");
        option.value = value;
        select.appendChild(option);
      }
      select.value = value;
    });
    if (ui.overdue) { ui.overdue.checked = state.overdue; }
    ui.size.value = String(state.size);
  }

  function update(change) {
    change(state);
    render();
    writeHash();
  }
  function refilter(change) {
    update(function (s) { change(s); s.page = 1; s.open = null; });
  }

  // ------------------------------------------------------------------ self-test

  // Opened at #selftest: click the headers and check the order of the whole view (missing
  // values last) and that the table shows the view's first page.
  function selftest() {
    var problems = [];
    function check(key, dir, what) {
      var numeric = isNumeric(key), value = COLUMNS[key].key;
      var values = view.map(value);
      var known = values.filter(function (v) { return !missing(v); });
      if (values.slice(0, known.length).some(missing)) { problems.push(what + ": missing values not last"); }
      for (var i = 1; i < known.length; i++) {
        var c = numeric ? known[i - 1] - known[i] : collator.compare(known[i - 1], known[i]);
        if (dir * c > 0) {
          problems.push(what + ": " + known[i - 1] + " before " + known[i]);
          return;
        }
      }
      if (known.length < 2) { problems.push(what + ": fewer than two values to compare"); }
      var shown = Array.prototype.map.call(ui.body.querySelectorAll("tr[data-account-id]"),
                                           function (r) { return r.getAttribute("data-account-id"); });
      var first = view.slice(0, state.size).map(function (a) { return a.id; });
      if (shown.join("\n") !== first.join("\n")) { problems.push(what + ": the table is not the view's first page"); }
    }
    function click(key) { header(key).querySelector("button").click(); }
    ui.columns.forEach(function (key) {
      if (!COLUMNS.hasOwnProperty(key)) { problems.push("no column " + key + " in the script"); }
    });
    check("priority", -1, "default order by priority, descending");
    click("probability"); check("probability", 1, "churn probability, first click");
    click("probability"); check("probability", -1, "churn probability, second click");
    click("name"); check("name", 1, "name, first click");
    click("arr"); click("arr"); check("arr", -1, "ARR, second click");
    click("renewal"); check("renewal", 1, "renewal, first click");
    root.setAttribute("data-selftest", problems.length ? problems.join("; ") : "ok");
  }

  // ------------------------------------------------------------------ wiring

  function start() {
    ui.table = document.getElementById("accounts-table");
    ui.body = ui.table.tBodies[0];
    ui.wrap = ui.table.parentNode;
    ui.columns = [];
    ui.classes = {};
    ui.table.querySelectorAll("thead th").forEach(function (th) {
      ui.columns.push(th.getAttribute("data-key"));
      ui.classes[th.getAttribute("data-key")] = th.className;
    });
    ui.search = document.getElementById("filter-search");
    ui.bands = Array.prototype.slice.call(document.querySelectorAll("button[data-band]"));
    ui.choices = {};
    CHOICES.forEach(function (name) { ui.choices[name] = document.getElementById("filter-" + name); });
    ui.overdue = document.getElementById("filter-overdue");
    ui.status = document.getElementById("view-status");
    ui.pageInfo = document.getElementById("page-info");
    ui.size = document.getElementById("page-size");
    ui.pager = {};
    document.querySelectorAll("#pager button[data-page]").forEach(function (b) {
      ui.pager[b.getAttribute("data-page")] = b;
    });

    load();
    var hash = location.hash.slice(1), test = hash === "selftest";
    state = isState(hash) ? parseState(hash) : defaults();
    showState();
    render();
    root.setAttribute("data-ready", "");
    if (window.performance && performance.mark) { performance.mark("report-table-drawn"); }

    ui.search.addEventListener("input", function () {
      refilter(function (s) { s.q = ui.search.value; });
    });
    ui.bands.forEach(function (b) {
      b.addEventListener("click", function () {
        var band = b.getAttribute("data-band");
        refilter(function (s) {
          var on = s.bands.indexOf(band) === -1;
          s.bands = BANDS.filter(function (x) { return x === band ? on : s.bands.indexOf(x) !== -1; });
        });
        b.setAttribute("aria-pressed", String(state.bands.indexOf(band) !== -1));
      });
    });
    CHOICES.forEach(function (name) {
      var select = ui.choices[name];
      if (!select) { return; }
      select.addEventListener("change", function () {
        // Option values are "=" + the value ("=" alone: missing); "" is "all".
        refilter(function (s) { s[name] = select.value === "" ? null : select.value.slice(1); });
      });
    });
    if (ui.overdue) {
      ui.overdue.addEventListener("change", function () {
        refilter(function (s) { s.overdue = ui.overdue.checked; });
      });
    }
    document.getElementById("filter-clear").addEventListener("click", function () {
      refilter(function (s) {
        var d = defaults();
        ["q", "bands", "segment", "csm", "renewal", "overdue"].forEach(function (k) { s[k] = d[k]; });
      });
      showState();
    });
    ui.table.querySelectorAll("thead th button").forEach(function (b) {
      b.addEventListener("click", function () {
        var key = b.closest("th").getAttribute("data-key");
        update(function (s) {
          s.dir = s.sort === key && s.dir === "asc" ? "desc" : "asc";
          s.sort = key;
          s.page = 1;
          s.open = null;
        });
      });
    });
    document.getElementById("pager").addEventListener("click", function (e) {
      var b = e.target.closest("button[data-page]");
      if (!b || b.disabled) { return; }
      var go = b.getAttribute("data-page"), last = Math.max(1, Math.ceil(view.length / state.size));
      update(function (s) {
        s.page = {first: 1, previous: s.page - 1, next: s.page + 1, last: last}[go];
        s.open = null;
      });
      ui.wrap.scrollTop = 0;
    });
    ui.size.addEventListener("change", function () {
      update(function (s) {
        var first = (s.page - 1) * s.size;  // keep the first account shown in view
        s.size = parseInt(ui.size.value, 10);
        s.page = Math.floor(first / s.size) + 1;
      });
    });
    ui.body.addEventListener("click", function (e) {
      var target = e.target;
      if (target.closest("[data-close]")) {
        update(function (s) { s.open = null; });
        return;
      }
      var row = target.closest("tr.account");
      if (!row) { return; }
      var id = row.getAttribute("data-account-id");
      update(function (s) { s.open = s.open === id ? null : id; });
      var again = ui.body.querySelector('tr.account.open button.account-id');
      if (again) { again.focus(); }
    });
    // In-page links scroll to their section and keep the view in the address.
    document.addEventListener("click", function (e) {
      var link = e.target.closest && e.target.closest('a[href^="#"]');
      var target = link && document.getElementById(link.getAttribute("href").slice(1));
      if (target) {
        e.preventDefault();
        target.scrollIntoView();
      }
    });
    // A view typed or pasted into the address (or the back button) is shown.
    window.addEventListener("hashchange", function () {
      var h = location.hash.slice(1);
      if (isState(h) && h !== hashOf(state)) {
        state = parseState(h);
        showState();
        render();
      }
    });
    if (test) {
      try { selftest(); } catch (e) {
        record("selftest: " + e);
        root.setAttribute("data-selftest", "error");
      }
    } else if (state.open !== null) {
      var open = ui.body.querySelector("tr.detail");
      if (open) { open.scrollIntoView({block: "center"}); }
    }
  }

  document.addEventListener("DOMContentLoaded", start);  // an error in it lands in data-errors
})();
