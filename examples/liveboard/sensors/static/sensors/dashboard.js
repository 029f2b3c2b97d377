// Sensor dashboard: a live chart per sensor and a table of every reading.
(function () {
  "use strict";

  const MAX_ROWS = 200;   // rows kept in the readings table
  const MAX_POINTS = 60;  // points kept in each chart

  const statusEl = document.getElementById("status");
  const errorEl = document.getElementById("error");
  const chartsEl = document.getElementById("charts");
  const noReadingsEl = document.getElementById("no-readings");
  const tbody = document.querySelector("#readings tbody");
  const form = document.getElementById("test-reading");

  const charts = new Map(); // sensor name -> Chart (or null without Chart.js)
  let socket = null;
  let attempts = 0;

  // --- charts and table ----------------------------------------------------

  function chartFor(sensor) {
    if (charts.has(sensor)) {
      return charts.get(sensor);
    }
    const section = document.createElement("section");
    section.className = "chart";
    section.setAttribute("data-sensor", sensor);
    const title = document.createElement("h2");
    title.textContent = sensor;
    const box = document.createElement("div");
    box.className = "canvas-box";
    const canvas = document.createElement("canvas");
    box.appendChild(canvas);
    section.append(title, box);
    chartsEl.appendChild(section);

    let chart = null;
    if (typeof Chart !== "undefined") {
      chart = new Chart(canvas, {
        type: "line",
        data: { labels: [], datasets: [{ label: sensor, data: [], pointRadius: 2 }] },
        options: {
          animation: false,
          maintainAspectRatio: false,
          plugins: { legend: { display: false } },
          scales: { x: { ticks: { maxTicksLimit: 6 } } },
        },
      });
    }
    charts.set(sensor, chart);
    return chart;
  }

  function addToChart(reading) {
    const chart = chartFor(reading.sensor);
    if (!chart) {
      return;
    }
    chart.data.labels.push(new Date(reading.ts).toLocaleTimeString());
    chart.data.datasets[0].data.push(reading.value);
    if (chart.data.labels.length > MAX_POINTS) {
      chart.data.labels.shift();
      chart.data.datasets[0].data.shift();
    }
    chart.update("none");
  }

  function addToTable(reading) {
    const row = document.createElement("tr");
    row.setAttribute("data-sensor", reading.sensor);
    row.setAttribute("data-value", String(reading.value));
    row.setAttribute("data-via", reading.via);
    row.setAttribute("data-ts", reading.ts);
    const cells = [new Date(reading.ts).toLocaleTimeString(), reading.sensor, String(reading.value), reading.via];
    cells.forEach(function (text, i) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (i === 2) {
        cell.className = "value";
      }
      row.appendChild(cell);
    });
    tbody.insertBefore(row, tbody.firstChild); // newest first
    while (tbody.rows.length > MAX_ROWS) {
      tbody.deleteRow(-1);
    }
  }

  // --- the socket ----------------------------------------------------------

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + "/ws/sensor_data/";
  }

  function retryDelay(attempt) {
    // Exponential backoff (0.5 s, 1 s, 2 s, ... at most 30 s) with jitter, so
    // that browsers do not all come back at the same moment after a restart.
    const ceiling = Math.min(30000, 500 * Math.pow(2, attempt));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  function connect() {
    socket = new WebSocket(socketUrl());
    socket.addEventListener("open", function () {
      attempts = 0;
      statusEl.textContent = "connected";
      errorEl.textContent = "";
    });
    socket.addEventListener("message", function (event) {
      const msg = JSON.parse(event.data);
      if (msg.type === "reading") {
        noReadingsEl.hidden = true;
        addToTable(msg);
        addToChart(msg);
      } else if (msg.type === "error") {
        errorEl.textContent = msg.error;
      }
    });
    socket.addEventListener("close", function () {
      statusEl.textContent = "reconnecting…";
      setTimeout(connect, retryDelay(attempts++));
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const value = Number(form.elements.value.value);
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ sensor: form.elements.sensor.value.trim(), value: value }));
    } else {
      errorEl.textContent = "not connected";
    }
  });

  connect();
})();
