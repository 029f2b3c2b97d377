// Live locations: share our position over /ws/location/ and draw everyone's.
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const MAX_NAME_LENGTH = 32;

  const statusEl = document.getElementById("status");
  const errorEl = document.getElementById("error");
  const markersLayer = document.getElementById("markers");
  const form = document.getElementById("position-form");

  const markers = new Map(); // participant id -> <g class="marker">
  let myId = null;
  let me = null; // {name, lat, lon}: the position we share
  let socket = null;
  let attempts = 0;
  let geoWatch = null;

  // --- the map -------------------------------------------------------------

  function upsertMarker(p) {
    let g = markers.get(p.id);
    if (!g) {
      g = document.createElementNS(SVG_NS, "g");
      g.setAttribute("class", p.id === myId ? "marker self" : "marker");
      g.setAttribute("data-id", p.id);
      const dot = document.createElementNS(SVG_NS, "circle");
      dot.setAttribute("r", "2.2");
      const label = document.createElementNS(SVG_NS, "text");
      label.setAttribute("x", "3");
      label.setAttribute("y", "1.5");
      const title = document.createElementNS(SVG_NS, "title");
      g.append(dot, label, title);
      markersLayer.appendChild(g);
      markers.set(p.id, g);
    }
    g.setAttribute("data-name", p.name);
    g.setAttribute("data-lat", String(p.lat));
    g.setAttribute("data-lon", String(p.lon));
    // Equirectangular projection: x = longitude, y = -latitude.
    g.setAttribute("transform", "translate(" + p.lon + " " + -p.lat + ")");
    g.querySelector("text").textContent = p.name;
    g.querySelector("title").textContent = p.name + " (" + p.lat + ", " + p.lon + ")";
  }

  function removeMarker(id) {
    const g = markers.get(id);
    if (g) {
      g.remove();
      markers.delete(id);
    }
  }

  function clearMarkers() {
    markers.forEach(function (g) { g.remove(); });
    markers.clear();
  }

  // --- the socket ----------------------------------------------------------

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + "/ws/location/";
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
      clearMarkers(); // the server sends everyone's current position again
      sharePosition();
    });
    socket.addEventListener("message", function (event) {
      handle(JSON.parse(event.data));
    });
    socket.addEventListener("close", function () {
      statusEl.textContent = "reconnecting…";
      setTimeout(connect, retryDelay(attempts++));
    });
  }

  function handle(msg) {
    if (msg.type === "hello") {
      myId = msg.id;
    } else if (msg.type === "position") {
      upsertMarker(msg);
    } else if (msg.type === "left") {
      removeMarker(msg.id);
    } else if (msg.type === "error") {
      errorEl.textContent = msg.error;
    }
  }

  function sharePosition() {
    if (me && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "position", name: me.name, lat: me.lat, lon: me.lon }));
    }
  }

  // --- our own position ----------------------------------------------------

  function toNumber(text) {
    return text === null || text.trim() === "" ? NaN : Number(text);
  }

  function validPosition(lat, lon) {
    return Number.isFinite(lat) && Number.isFinite(lon) &&
      lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180;
  }

  function currentName() {
    return form.elements.name.value.trim().slice(0, MAX_NAME_LENGTH);
  }

  function setPosition(lat, lon) {
    form.elements.lat.value = lat;
    form.elements.lon.value = lon;
    me = { name: currentName(), lat: lat, lon: lon };
    sharePosition();
  }

  const params = new URLSearchParams(window.location.search);
  form.elements.name.value = (params.get("name") || "guest-" + Math.floor(1000 + Math.random() * 9000))
    .trim().slice(0, MAX_NAME_LENGTH);

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const lat = toNumber(form.elements.lat.value);
    const lon = toNumber(form.elements.lon.value);
    if (!currentName() || !validPosition(lat, lon)) {
      errorEl.textContent = "enter a name, a latitude in [-90, 90] and a longitude in [-180, 180]";
      return;
    }
    errorEl.textContent = "";
    if (geoWatch !== null) {
      // A position set by hand wins over the browser's.
      navigator.geolocation.clearWatch(geoWatch);
      geoWatch = null;
    }
    setPosition(lat, lon);
  });

  const queryLat = toNumber(params.get("lat"));
  const queryLon = toNumber(params.get("lon"));
  if (validPosition(queryLat, queryLon)) {
    setPosition(queryLat, queryLon);
  } else if ("geolocation" in navigator) {
    geoWatch = navigator.geolocation.watchPosition(
      function (pos) {
        setPosition(Math.round(pos.coords.latitude * 1e5) / 1e5, Math.round(pos.coords.longitude * 1e5) / 1e5);
      },
      function () { /* not permitted or not available: the form still works */ },
      { maximumAge: 60000, timeout: 30000 }
    );
  }

  connect();
})();
