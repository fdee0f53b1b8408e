// simfarm usage page: core-hours per UTC day and per account (or user, or node), drawn
// with the dashboard's charts (charts.js, the vendored uPlot) from
// GET /api/v1/usage?bucket=day, with the range's totals in a table. The API decides
// what the caller sees: admins every row, anyone else their own usage.
(function () {
  "use strict";
  var charts = window.simfarmCharts;

  function dayStart(iso) { return Date.parse(iso + "T00:00:00Z") / 1000; }
  function hours(seconds) { return seconds / 3600; }
  function shown(h) { return h >= 10 ? h.toFixed(1) : h.toFixed(3); }

  // body: the report; returns [days, names, data] with one value per day and name.
  function columns(body) {
    var days = [];
    for (var t = dayStart(body.since); t <= dayStart(body.until); t += 86400) { days.push(t); }
    var index = {};
    days.forEach(function (t, i) { index[t] = i; });
    var totals = {};
    body.rows.forEach(function (r) { totals[r.name] = (totals[r.name] || 0) + r.core_seconds; });
    var names = Object.keys(totals).sort(function (a, b) { return totals[b] - totals[a]; });
    var data = [days];
    names.forEach(function (name) {
      var ys = days.map(function () { return 0; });
      body.rows.forEach(function (r) {
        if (r.name === name && index[dayStart(r.day)] !== undefined) {
          ys[index[dayStart(r.day)]] = hours(r.core_seconds);
        }
      });
      data.push(ys);
    });
    return [days, names, data];
  }

  function fillTotals(table, body) {
    var sums = {};
    body.rows.forEach(function (r) {
      var s = sums[r.name] || (sums[r.name] = { attempts: 0, core: 0, wait: 0, ended: {} });
      s.attempts += r.attempts;
      s.core += r.core_seconds;
      s.wait += r.wait_seconds;
      Object.keys(r.ended).forEach(function (k) { s.ended[k] = (s.ended[k] || 0) + r.ended[k]; });
    });
    var tbody = table.tBodies[0];
    tbody.innerHTML = "";
    Object.keys(sums).sort(function (a, b) { return sums[b].core - sums[a].core; }).forEach(function (name) {
      var s = sums[name];
      var tr = tbody.insertRow();
      tr.setAttribute("data-name", name);
      [name, s.attempts, shown(hours(s.core)), s.attempts ? (s.wait / s.attempts).toFixed(1) + " s" : "—",
        Object.keys(s.ended).sort().map(function (k) { return k + " " + s.ended[k]; }).join(", ") || "—"]
        .forEach(function (v, i) {
          var td = tr.insertCell();
          td.textContent = String(v);
          if (i > 0 && i < 4) { td.className = "num"; }
        });
    });
  }

  function usage(root) {
    var form = root.querySelector("form");
    var section = root.querySelector("section.chart");
    var link = document.getElementById("usage-json");
    var table = document.getElementById("usage-totals");

    function refresh() {
      var by = form.elements.by.value;
      var path = "/api/v1/usage?bucket=day&by=" + encodeURIComponent(by) +
        "&since=" + encodeURIComponent(form.elements.since.value);
      if (link) { link.href = path; }
      charts.api(path).then(function (body) {
        var cols = columns(body);
        var series = [{ label: "day", value: function (u, v) {
          return v === null ? "—" : new Date(v * 1000).toISOString().slice(0, 10); } }];
        cols[1].forEach(function (name, i) {
          var color = charts.colors[i % charts.colors.length];
          series.push({ label: name, stroke: color, fill: color + "22", width: 2,
            points: { show: true, size: 5 } });
        });
        charts.draw("usage", section, {
          title: "Core-hours per UTC day, by " + by, height: 300, series: series,
          scales: { y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
          axes: [{}, { label: "core-hours", size: 70, values: function (u, ticks) {
            return ticks.map(function (v) { return String(Number(v.toPrecision(3))); }); } }],
        }, cols[2]);
        charts.fillTable(section, ["day"].concat(cols[1]), cols[0].map(function (t, i) {
          return [new Date(t * 1000).toISOString().slice(0, 10)].concat(
            cols[2].slice(1).map(function (ys) { return ys[i]; }));
        }));
        fillTotals(table, body);
        root.setAttribute("data-scope", body.scope);
        root.setAttribute("data-refreshed", String(Number(root.getAttribute("data-refreshed") || 0) + 1));
      }).catch(function (err) { section.setAttribute("data-error", String(err)); });
    }

    form.addEventListener("change", refresh);
    form.addEventListener("submit", function (e) { e.preventDefault(); refresh(); });
    refresh();
  }

  function init() {
    if (window.simfarm && simfarm.bindToken) { simfarm.bindToken(); }
    var root = document.getElementById("usage");
    if (root) { usage(root); }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); }
  else { window.setTimeout(init, 0); }
})();
