// simfarm dashboard: plain JavaScript, no build step. Every change goes through the REST
// API; live views follow /api/v1/ws (docs/websocket.md) and fall back to long-polling.
var simfarm = (function () {
  "use strict";
  var TOKEN_KEY = "simfarm.token";
  var MAX_LOG_LINES = 2000;
  var FINAL = { completed: true, failed: true, cancelled: true };

  function token() { return window.localStorage.getItem(TOKEN_KEY) || ""; }

  function api(method, path, data) {
    var headers = { Accept: "application/json" };
    if (token()) { headers.Authorization = "Bearer " + token(); }
    var options = { method: method, headers: headers, credentials: "same-origin" };
    if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(data);
    }
    return fetch(path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { status: response.status, ok: response.ok, body: body };
      });
    }, function (err) {
      return { status: 0, ok: false, body: { error: "network", detail: String(err) } };
    });
  }

  function flash(text, kind) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = text;
    box.className = "flash " + (kind || "info");
    box.hidden = false;
    window.clearTimeout(flash.timer);
    flash.timer = window.setTimeout(function () { box.hidden = true; }, 8000);
  }

  function problem(result) {
    var body = result.body || {};
    return body.detail || body.error || ("HTTP " + result.status);
  }

  function setBadge(badge, state) {
    if (!badge) { return; }
    badge.textContent = state;
    badge.className = "state state-" + state;
    badge.setAttribute("data-state", state);
  }

  function jobPath(jobId) { return "/api/v1/jobs/" + encodeURIComponent(jobId); }

  function cancel(jobId, button) {
    button.disabled = true;
    api("POST", jobPath(jobId) + "/cancel").then(function (r) {
      button.disabled = false;
      if (r.ok) {
        flash(r.status === 202 ? "stopping job " + jobId : "job " + jobId + " cancelled");
        var row = document.querySelector('tr[data-job="' + jobId + '"] .state');
        if (row && r.body.state) { setBadge(row, r.body.state); }
      } else {
        flash("cancel failed: " + problem(r), "error");
      }
    });
  }

  function setPriority(jobId, input, button) {
    var value = input.value === "" ? input.value : Number(input.value);
    button.disabled = true;
    api("PATCH", jobPath(jobId), { priority: value }).then(function (r) {
      button.disabled = false;
      if (r.ok) {
        flash("job " + jobId + ": priority " + r.body.priority);
        var cell = document.getElementById("f-priority");
        if (cell) { cell.textContent = r.body.priority; }
      } else {
        flash("priority not changed: " + problem(r), "error");
      }
    });
  }

  function resubmit(jobId, button) {
    button.disabled = true;
    api("POST", jobPath(jobId) + "/resubmit", {}).then(function (r) {
      button.disabled = false;
      if (r.ok) {
        window.location.href = "/ui/jobs/" + encodeURIComponent(r.body.id);
      } else {
        flash("resubmit failed: " + problem(r), "error");
      }
    });
  }

  function bindActions(root) {
    root.addEventListener("click", function (event) {
      var target = event.target;
      if (!(target instanceof HTMLButtonElement)) { return; }
      var jobId = target.getAttribute("data-job");
      if (!jobId) { return; }
      if (target.classList.contains("cancel")) { cancel(jobId, target); }
      if (target.classList.contains("resubmit")) { resubmit(jobId, target); }
      if (target.classList.contains("set-priority")) {
        var input = target.parentNode.querySelector('input.prio[data-job="' + jobId + '"]');
        setPriority(jobId, input, target);
      }
    });
  }

  function bindToken() {
    var input = document.getElementById("api-token");
    if (!input) { return; }
    input.value = token();
    input.addEventListener("change", function () {
      // The cookie lets the gateway serve the pages and the WebSocket (GET only).
      if (input.value) {
        window.localStorage.setItem(TOKEN_KEY, input.value);
        document.cookie = "simfarm_token=" + encodeURIComponent(input.value) +
          "; path=/; SameSite=Strict";
      } else {
        window.localStorage.removeItem(TOKEN_KEY);
        document.cookie = "simfarm_token=; path=/; max-age=0; SameSite=Strict";
      }
    });
  }

  // Follows events of some jobs: WebSocket first, long-polling when it is not available.
  function follow(subscription, onEvent, onStatus) {
    var cursor = subscription.since || null;
    var stopped = false;
    var everOpen = false;
    var delay = 500;

    function poll() {
      if (stopped || !subscription.jobs || subscription.jobs.length !== 1) { return; }
      onStatus("live (polling)");
      var url = jobPath(subscription.jobs[0]) + "/events?wait=25" +
        (cursor ? "&since=" + encodeURIComponent(cursor) : "");
      api("GET", url).then(function (r) {
        if (r.ok) {
          (r.body.events || []).forEach(function (e) { cursor = e.id; onEvent(e); });
          if (r.body.last_id) { cursor = r.body.last_id; }
          window.setTimeout(poll, 50);
        } else {
          onStatus("disconnected: " + problem(r));
          window.setTimeout(poll, 3000);
        }
      });
    }

    function connect() {
      if (stopped) { return; }
      if (!("WebSocket" in window)) { poll(); return; }
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var ws;
      try {
        ws = new WebSocket(scheme + window.location.host + document.body.getAttribute("data-ws"));
      } catch (err) { poll(); return; }
      ws.onopen = function () {
        everOpen = true;
        delay = 500;
        var message = { op: "subscribe" };
        if (subscription.jobs) { message.jobs = subscription.jobs; }
        if (subscription.types) { message.types = subscription.types; }
        if (cursor) { message.since = cursor; }
        ws.send(JSON.stringify(message));
      };
      ws.onmessage = function (msg) {
        var data = JSON.parse(msg.data);
        if (data.op === "event") { cursor = data.id; onEvent(data); }
        else if (data.op === "heartbeat" || data.op === "live") {
          cursor = data.id;
          onStatus("live");
        } else if (data.op === "subscribed") { onStatus("live"); }
        else if (data.op === "error") { onStatus("error: " + data.detail); stopped = true; }
      };
      ws.onclose = function (event) {
        if (stopped) { return; }
        if (!everOpen || event.code === 1013) { poll(); return; }
        if (event.code === 1008 || event.code === 4401) {
          onStatus("refused: " + (event.reason || event.code));
          return;
        }
        onStatus("reconnecting…");
        window.setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }

    connect();
    return { stop: function () { stopped = true; } };
  }

  function jobsPage(lastId) {
    bindToken();
    bindActions(document);
    var ids = Array.prototype.map.call(
      document.querySelectorAll("tr[data-job]"), function (row) { return row.getAttribute("data-job"); });
    if (!ids.length) { return; }
    follow({ jobs: ids, types: ["state"], since: lastId }, function (event) {
      var badge = document.querySelector('tr[data-job="' + event.job_id + '"] .state');
      if (event.data && event.data.to) { setBadge(badge, event.data.to); }
    }, function () {});
  }

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = value === null || value === undefined || value === "" ? "—" : value; }
  }

  function clock(iso) {
    if (!iso) { return "—"; }
    var d = new Date(iso);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
      two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function refreshFacts(jobId) {
    api("GET", jobPath(jobId)).then(function (r) {
      if (!r.ok) { return; }
      var job = r.body;
      setBadge(document.getElementById("job-state"), job.state);
      text("f-node", job.node);
      text("f-attempt", job.attempt);
      text("f-priority", job.priority);
      text("f-started", clock(job.started_at));
      text("f-finished", clock(job.finished_at));
      text("f-exit", job.exit_code);
      text("f-reason", job.reason || job.error);
      if (FINAL[job.state]) {
        var actions = document.getElementById("job-actions");
        if (actions) { actions.innerHTML = ""; }
      }
    });
  }

  function jobPage(jobId, lastId) {
    bindToken();
    bindActions(document);
    var log = document.getElementById("log");
    var timeline = document.getElementById("timeline");
    var status = document.getElementById("live-status");
    follow({ jobs: [jobId], since: lastId }, function (event) {
      // Charts on the page (charts.js) follow the same events.
      document.dispatchEvent(new CustomEvent("simfarm:event", { detail: event }));
      if (event.type === "state" && event.data.to) {
        setBadge(document.getElementById("job-state"), event.data.to);
        var item = document.createElement("li");
        item.setAttribute("data-event", event.id);
        var when = document.createElement("time");
        when.textContent = clock(event.ts * 1000);
        var badge = document.createElement("span");
        setBadge(badge, event.data.to);
        item.appendChild(when);
        item.appendChild(document.createTextNode(" "));
        item.appendChild(badge);
        if (event.data.node) { item.appendChild(document.createTextNode(" on " + event.data.node)); }
        if (event.data.reason) {
          var reason = document.createElement("span");
          reason.className = "reason";
          reason.textContent = event.data.reason;
          item.appendChild(reason);
        }
        timeline.appendChild(item);
        refreshFacts(jobId);
      } else if (event.type === "log") {
        var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
        log.appendChild(document.createTextNode((event.data.line || "") + "\n"));
        while (log.childNodes.length > MAX_LOG_LINES) { log.removeChild(log.firstChild); }
        if (atBottom) { log.scrollTop = log.scrollHeight; }
      } else if (event.type === "progress") {
        text("f-progress", JSON.stringify(event.data));
      }
    }, function (state) { status.textContent = state; });
  }

  function lines(value) {
    return value.split("\n").map(function (s) { return s.replace(/\r$/, ""); })
      .filter(function (s) { return s !== ""; });
  }

  function pairs(value) {
    var out = {};
    lines(value).forEach(function (line) {
      var at = line.indexOf("=");
      if (at < 0) { out[line] = ""; } else { out[line.slice(0, at)] = line.slice(at + 1); }
    });
    return out;
  }

  function number(value) { return value === "" ? undefined : Number(value); }

  function buildSpec(form) {
    var f = form.elements;
    var kind = form.querySelector('input[name="kind"]:checked').value;
    var spec = { kind: kind, priority: number(f.priority.value), retries: number(f.retries.value) };
    if (f.name.value) { spec.name = f.name.value; }
    if (f.timeout_s.value) { spec.timeout_s = number(f.timeout_s.value); }
    var resources = {};
    if (f.cores.value) { resources.cores = number(f.cores.value); }
    if (f.memory_mb.value) { resources.memory_mb = number(f.memory_mb.value); }
    if (f.labels.value.trim()) { resources.labels = pairs(f.labels.value); }
    if (Object.keys(resources).length) { spec.resources = resources; }
    if (kind === "command") {
      spec.argv = lines(f.argv.value);
      if (f.cwd.value) { spec.cwd = f.cwd.value; }
      if (f.env.value.trim()) { spec.env = pairs(f.env.value); }
    } else {
      var cores = number(f.hfss_cores.value) || 1;
      spec.hfss = {
        project_path: f.project_path.value,
        design_name: f.design_name.value,
        setup_name: f.setup_name.value,
        scheduler_type: f.scheduler_type.value,
        machine_nodes: [{ hostname: "localhost", cores: cores, max_cores: cores }],
      };
    }
    return spec;
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".field-error"), function (el) { el.remove(); });
    Array.prototype.forEach.call(form.querySelectorAll(".invalid"), function (el) {
      el.classList.remove("invalid");
    });
    document.getElementById("form-error").hidden = true;
  }

  function showErrors(form, result) {
    var box = document.getElementById("form-error");
    box.textContent = problem(result);
    box.hidden = false;
    ((result.body || {}).fields || []).forEach(function (err) {
      var inputs = form.querySelectorAll("[data-field]");
      for (var i = 0; i < inputs.length; i++) {
        var name = inputs[i].getAttribute("data-field");
        if (err.field === name || err.field.indexOf(name + ".") === 0) {
          inputs[i].classList.add("invalid");
          var note = document.createElement("span");
          note.className = "field-error";
          note.setAttribute("data-for", err.field);
          note.textContent = err.field + ": " + err.reason;
          inputs[i].parentNode.appendChild(note);
          break;
        }
      }
    });
  }

  function submitPage() {
    bindToken();
    var form = document.getElementById("submit-form");
    function showKind() {
      var kind = form.querySelector('input[name="kind"]:checked').value;
      form.querySelector(".only-command").hidden = kind !== "command";
      form.querySelector(".only-hfss").hidden = kind !== "hfss";
    }
    Array.prototype.forEach.call(form.querySelectorAll('input[name="kind"]'), function (radio) {
      radio.addEventListener("change", showKind);
    });
    showKind();
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearErrors(form);
      var button = document.getElementById("submit-button");
      button.disabled = true;
      api("POST", "/api/v1/jobs", buildSpec(form)).then(function (r) {
        button.disabled = false;
        if (r.ok) { window.location.href = "/ui/jobs/" + encodeURIComponent(r.body.id); }
        else { showErrors(form, r); }
      });
    });
  }

  return { api: api, follow: follow, bindToken: bindToken, jobsPage: jobsPage, jobPage: jobPage,
    submitPage: submitPage };
})();
