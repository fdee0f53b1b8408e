// simfarm charts: the dashboard's pictures, drawn with the vendored uPlot
// (uPlot.iife.min.js, MIT, see uPlot.LICENSE.txt). Only pages that draw load this file.
// Nothing runs inline: each chart is an element with data-chart="..." that names what
// to draw; live pages tell it about new job events with a "simfarm:event" DOM event.
// window.simfarmCharts.get(name) gives the drawn chart's uPlot instance (and its .data).
var simfarmCharts = (function () {
  "use strict";
  var charts = {};
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
    "#db2777", "#4b5563", "#65a30d", "#9333ea"];

  function api(path) {
    var headers = { Accept: "application/json" };
    var token = window.localStorage.getItem("simfarm.token");
    if (token) { headers.Authorization = "Bearer " + token; }
    return fetch(path, { headers: headers, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }

  function width(el) { return Math.max(320, Math.min(el.clientWidth || 640, 1100)); }

  // Draws (or redraws with new data) the chart called name inside el.plot; a chart
  // whose series changed (other labels) is drawn anew.
  function draw(name, el, options, data) {
    var holder = el.querySelector(".plot");
    var known = charts[name];
    var labels = options.series.map(function (s) { return s.label; }).join("\u0000");
    if (known && known.labels === labels) {
      known.plot.setData(data);
    } else {
      if (known) { known.plot.destroy(); }
      options.width = width(holder);
      options.height = options.height || 260;
      charts[name] = { plot: new uPlot(options, data, holder), labels: labels };
    }
    var points = 0;
    for (var s = 1; s < data.length; s++) {
      for (var i = 0; i < data[s].length; i++) { if (data[s][i] !== null) { points++; } }
    }
    el.setAttribute("data-points", String(points));
    el.setAttribute("data-drawn", String(Number(el.getAttribute("data-drawn") || 0) + 1));
    return charts[name].plot;
  }

  function fillTable(el, header, rows) {
    var table = el.querySelector("table.chart-data");
    if (!table) { return; }
    table.innerHTML = "";
    var head = table.createTHead().insertRow();
    header.forEach(function (h) {
      var th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    });
    var body = table.createTBody();
    rows.forEach(function (row) {
      var tr = body.insertRow();
      row.forEach(function (v) { tr.insertCell().textContent = v === null ? "—" : String(v); });
    });
  }

  function throttle(fn, ms) {
    var timer = null;
    var again = false;
    return function () {
      if (timer) { again = true; return; }
      fn();
      timer = window.setTimeout(function () {
        timer = null;
        if (again) { again = false; fn(); }
      }, ms);
    };
  }

  function setProgress(id, value, max, label) {
    var bar = document.getElementById(id);
    var text = document.getElementById(id + "-text");
    if (bar) {
      if (max) { bar.max = max; bar.value = Math.min(value, max); } else { bar.removeAttribute("value"); }
    }
    if (text) { text.textContent = label; }
  }

  // ---------------------------------------------------------------- HFSS convergence
  function convergence(el) {
    var jobId = el.getAttribute("data-job");
    function refresh() {
      api("/api/v1/jobs/" + encodeURIComponent(jobId) + "/progress").then(function (c) {
        var passes = c.passes || [];
        var last = passes.length ? passes[passes.length - 1].pass : 0;
        var xs = [];
        var deltas = [];
        var target = [];
        var upTo = Math.max(last, 1);
        var byPass = {};
        passes.forEach(function (p) { byPass[p.pass] = p; });
        for (var n = 1; n <= upTo; n++) {
          xs.push(n);
          var p = byPass[n];
          deltas.push(p && p.delta_s !== null && p.delta_s > 0 ? p.delta_s : null);
          target.push(c.target_delta_s || null);
        }
        var series = [{ label: "pass" },
          { label: "Max Mag. Delta S", stroke: COLORS[0], width: 2, points: { show: true, size: 7 } }];
        var data = [xs, deltas];
        if (c.target_delta_s) {
          series.push({ label: "target", stroke: COLORS[1], dash: [6, 4], width: 1.5,
            points: { show: false } });
          data.push(target);
        }
        draw("convergence", el, {
          title: "Adaptive convergence",
          scales: { x: { time: false, range: [1, Math.max(c.max_passes || 0, upTo, 2)] },
            y: { distr: 3 } },
          axes: [{ label: "adaptive pass", incrs: [1, 2, 5, 10] },
            { label: "Max Mag. Delta S (log)", size: 70 }],
          series: series,
        }, data);
        fillTable(el, ["pass", "frequency", "elements", "Max Mag. Delta S"], passes.map(function (p) {
          return [p.pass, p.frequency, p.elements, p.delta_s];
        }));
        setProgress("passes-bar", last, c.max_passes,
          "pass " + last + (c.max_passes ? " of " + c.max_passes : "") +
          (c.target_delta_s ? " · target " + c.target_delta_s : "") +
          (c.converged === true ? " · converged" : c.converged === false ? " · not converged" : ""));
        var sweep = c.sweep;
        var box = document.getElementById("sweep-progress");
        if (box) { box.hidden = !sweep; }
        if (sweep) {
          setProgress("sweep-bar", sweep.solved, sweep.frequencies,
            (sweep.type ? sweep.type + " sweep: " : "sweep: ") + sweep.solved +
            (sweep.frequencies ? " of " + sweep.frequencies : "") + " frequencies" +
            (sweep.points.length ? " (last " + sweep.points[sweep.points.length - 1] + ")" : ""));
        }
        el.setAttribute("data-state", c.state);
      }).catch(function (err) { el.setAttribute("data-error", String(err)); });
    }
    var later = throttle(refresh, 400);
    document.addEventListener("simfarm:event", function (e) {
      var event = e.detail;
      if (event.job_id === jobId && (event.type === "progress" || event.type === "state")) { later(); }
    });
    refresh();
  }

  // ---------------------------------------------------------------- farm overview
  var LABELS = { cores_busy: "busy", cores_free: "free", jobs_pending: "pending",
    jobs_running: "running", jobs_finished: "finished", jobs_failed: "failed",
    wait_p50: "p50", wait_p95: "p95" };
  var METRIC_COLORS = { cores_busy: "#2563eb", cores_free: "#16a34a", jobs_pending: "#d97706",
    jobs_running: "#2563eb", jobs_finished: "#16a34a", jobs_failed: "#dc2626",
    wait_p50: "#2563eb", wait_p95: "#7c3aed" };

  function nonZero(s) {
    return s.points.some(function (p) { return p[1]; }) || (s.current && s.current[1]);
  }

  function seriesLabel(s) {
    if (s.labels.node) { return s.labels.node; }
    if (s.labels.priority) { return "priority " + s.labels.priority; }
    return LABELS[s.metric] || s.metric;
  }

  // One x array for every series (uPlot's data layout): the union of their times.
  function align(series) {
    var times = {};
    series.forEach(function (s) {
      s.points.forEach(function (p) { times[p[0]] = true; });
      if (s.current) { times[s.current[0]] = true; }
    });
    var xs = Object.keys(times).map(Number).sort(function (a, b) { return a - b; });
    var index = {};
    xs.forEach(function (t, i) { index[t] = i; });
    var data = [xs];
    series.forEach(function (s) {
      var ys = xs.map(function () { return null; });
      s.points.forEach(function (p) { ys[index[p[0]]] = p[1]; });
      if (s.current) { ys[index[s.current[0]]] = s.current[1]; }
      data.push(ys);
    });
    return data;
  }

  function clockOf(t) {
    var d = new Date(t * 1000);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
      two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function overview(root) {
    var bucket = Number(root.getAttribute("data-bucket")) || 60;
    var select = root.querySelector("select[name=window]");
    var sections = root.querySelectorAll("section.chart[data-metrics]");

    function url(section, span) {
      var q = "metric=" + section.getAttribute("data-metrics") + "&since=-" + span;
      var each = section.getAttribute("data-each");
      if (each) { q += "&" + each + "=*"; }
      if (section.getAttribute("data-bars")) {  // about 60 bars: per minute over an hour
        q += "&step=" + (span >= 86400 ? 3600 : Math.max(bucket, Math.ceil(span / 60 / bucket) * bucket));
      }
      return "/api/v1/stats/series?" + q;
    }

    function drawSection(section, body) {
      var bars = section.getAttribute("data-bars");
      if (section.getAttribute("data-each") === "priority") {
        // Only the priorities that had jobs waiting (all eleven would hide them).
        var shown = body.series.filter(nonZero);
        body.series = shown.length ? shown : body.series.slice(5, 6);
      }
      var unit = section.getAttribute("data-unit") || "";
      var series = [{ label: "time", value: function (u, v) { return v === null ? "—" : clockOf(v); } }];
      body.series.forEach(function (s, i) {
        var color = section.getAttribute("data-each") ? COLORS[i % COLORS.length]
          : METRIC_COLORS[s.metric] || COLORS[i % COLORS.length];
        var one = { label: seriesLabel(s), stroke: color, width: 2,
          spanGaps: false, points: { show: s.points.length < 80, size: 5 } };
        if (bars) {
          one.fill = color + "99";
          one.paths = uPlot.paths.bars({ size: [0.6, 40], align: 1 });
          one.points = { show: false };
        }
        series.push(one);
      });
      var data = align(body.series);
      var title = section.getAttribute("data-title") +
        (bars ? " (per " + (body.step >= 3600 ? body.step / 3600 + " h" :
          body.step >= 60 ? body.step / 60 + " min" : body.step + " s") + ")" : "");
      draw(section.id, section, {
        title: title, height: 220, series: series,
        scales: { x: { range: function () { return [body.since, Math.max(body.until, data[0][data[0].length - 1] || 0)]; } },
          y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
        axes: [{}, { label: unit, size: 60 }],
      }, data);
      var header = ["time"].concat(body.series.map(seriesLabel));
      var rows = data[0].map(function (t, i) {
        return [clockOf(t)].concat(data.slice(1).map(function (ys) { return ys[i]; }));
      });
      fillTable(section, header, rows.slice(-200));
    }

    function refresh() {
      var span = Number(select.value);
      Array.prototype.forEach.call(sections, function (section) {
        api(url(section, span)).then(function (body) { drawSection(section, body); })
          .catch(function (err) { section.setAttribute("data-error", String(err)); });
      });
      root.setAttribute("data-refreshed", String(Number(root.getAttribute("data-refreshed") || 0) + 1));
    }

    var later = throttle(refresh, 2000);
    select.addEventListener("change", refresh);
    refresh();
    window.setInterval(refresh, Math.max(5, Math.min(bucket, 60)) * 1000);
    // Live: every job state change in the farm moves the queue and the cores.
    if (window.simfarm && simfarm.follow) {
      simfarm.bindToken();
      var status = document.getElementById("live-status");
      simfarm.follow({ types: ["state"] }, function () { later(); },
        function (state) { if (status) { status.textContent = state; } });
    }
  }

  // ---------------------------------------------------------------- S-parameters
  function sparams(el) {
    var path = "/api/v1/jobs/" + encodeURIComponent(el.getAttribute("data-job")) +
      "/sparameters?file=" + encodeURIComponent(el.getAttribute("data-file"));
    api(path).then(function (body) {
      var file = body.files[0];
      if (!file || file.error) {
        el.querySelector(".plot").textContent = file ? file.error : "no data";
        el.setAttribute("data-error", file ? file.error : "no data");
        return;
      }
      var names = Object.keys(file.db);
      var ghz = file.frequency_hz.map(function (f) { return f / 1e9; });
      var series = [{ label: "GHz", value: function (u, v) { return v === null ? "—" : v.toFixed(3); } }];
      names.forEach(function (n, i) {
        // Dashed upper triangle (S12...): a reciprocal network's S12 lies on S21.
        var m = /^S(\d+),?(\d+)$/.exec(n);
        var upper = m && m[1].length === m[2].length && Number(m[1]) < Number(m[2]);
        series.push({ label: "|" + n + "| dB", stroke: COLORS[i % COLORS.length], width: 2,
          dash: upper ? [7, 5] : undefined, points: { show: ghz.length < 100, size: 4 } });
      });
      draw(el.id, el, {
        title: file.name + " (" + file.ports + "-port" +
          (file.z0 ? ", " + file.z0 + " Ω" : "") + ")",
        scales: { x: { time: false } },
        axes: [{ label: "frequency (GHz)" }, { label: "|Sij| (dB)", size: 60 }],
        series: series,
      }, [ghz].concat(names.map(function (n) { return file.db[n]; })));
      fillTable(el, ["GHz"].concat(names.map(function (n) { return n + " dB"; })),
        ghz.map(function (f, k) {
          return [f.toFixed(4)].concat(names.map(function (n) { return file.db[n][k]; }));
        }));
    }).catch(function (err) { el.setAttribute("data-error", String(err)); });
  }

  // A job that ends while its page is open: its Touchstone results appear without a reload.
  function sparamsWhenDone(slot) {
    var jobId = slot.getAttribute("data-job");
    var done = false;
    document.addEventListener("simfarm:event", function (e) {
      var event = e.detail;
      if (done || event.job_id !== jobId || event.type !== "state" || !FINAL[event.data.to]) { return; }
      done = true;
      api("/api/v1/jobs/" + encodeURIComponent(jobId) + "/sparameters").then(function (body) {
        body.files.forEach(function (file, i) {
          var section = document.createElement("section");
          section.className = "chart sparams";
          section.id = "sparams-" + i;
          section.setAttribute("data-job", jobId);
          section.setAttribute("data-file", file.name);
          var title = document.createElement("h2");
          title.textContent = "S-parameters " + file.name;
          section.appendChild(title);
          var plot = document.createElement("div");
          plot.className = "plot";
          section.appendChild(plot);
          var links = document.createElement("p");
          links.className = "downloads";
          var q = "?file=" + encodeURIComponent(file.name);
          var base = "/api/v1/jobs/" + encodeURIComponent(jobId) + "/sparameters";
          [["csv", "CSV", base + q + "&format=csv"], ["json", "JSON", base + q]].forEach(function (l) {
            var a = document.createElement("a");
            a.className = l[0];
            a.textContent = l[1];
            a.href = l[2];
            links.appendChild(a);
            links.appendChild(document.createTextNode(" "));
          });
          section.appendChild(links);
          var details = document.createElement("details");
          details.innerHTML = "<summary>data</summary><table class=\"chart-data\"></table>";
          section.appendChild(details);
          slot.appendChild(section);
          sparams(section);
        });
      });
    });
  }
  var FINAL = { completed: true, failed: true, cancelled: true };

  function init() {
    var slot = document.getElementById("sparams-slot");
    if (slot) { sparamsWhenDone(slot); }
    Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), function (el) {
      var kind = el.getAttribute("data-chart");
      if (kind === "convergence") { convergence(el); }
      else if (kind === "overview") { overview(el); }
      else if (kind === "sparams") { sparams(el); }
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); }
  else { window.setTimeout(init, 0); }

  return {
    get: function (name) { return charts[name] ? charts[name].plot : null; },
    api: api, draw: draw, fillTable: fillTable, throttle: throttle, colors: COLORS,
  };
})();
