// The room page: one WebSocket to /ws/chat/<room>/, the protocol of docs/protocol.md.
// Plain JS, no build step. On a lost socket it reconnects with exponential
// backoff and full jitter, asking for what it missed with ?after=<last id>.
(function () {
  "use strict";

  // Reconnect delays, in milliseconds: a random wait in [0, min(CAP, BASE * 2^attempt)]
  // ("full jitter", from AWS's "Exponential Backoff and Jitter").
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 15000;

  const root = document.getElementById("chat");
  const room = root.dataset.room;
  const list = document.getElementById("messages");
  const state = document.getElementById("state");
  const workerLabel = document.getElementById("worker");
  const errorLine = document.getElementById("error");
  const form = document.getElementById("composer");
  const input = document.getElementById("body");

  let socket = null;
  let lastId = null;   // highest message id shown; sent as ?after= on reconnect
  let attempt = 0;
  const shown = new Set();

  function setState(name, text) {
    state.dataset.state = name;
    state.textContent = text;
  }

  function showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = !text;
  }

  function show(message) {
    if (shown.has(message.id)) return;  // already on screen (history and live overlap)
    shown.add(message.id);
    lastId = lastId === null ? message.id : Math.max(lastId, message.id);
    const item = document.createElement("li");
    item.dataset.id = message.id;
    const time = document.createElement("time");
    time.dateTime = message.sent_at;
    time.textContent = new Date(message.sent_at).toLocaleTimeString();
    const user = document.createElement("b");
    user.textContent = message.user;
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = message.body;
    item.append(time, " ", user, " ", body);
    list.append(item);
    item.scrollIntoView({ block: "end" });
  }

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = lastId === null ? "" : "?after=" + encodeURIComponent(lastId);
    return scheme + "//" + location.host + "/ws/chat/" + encodeURIComponent(room) + "/" + query;
  }

  function connect() {
    setState(attempt ? "reconnecting" : "connecting", attempt ? "reconnecting…" : "connecting…");
    socket = new WebSocket(socketUrl());
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "welcome") {
        attempt = 0;
        setState("connected", "connected");
        workerLabel.textContent = "worker " + frame.worker;
        frame.history.forEach(show);
      } else if (frame.type === "message") {
        show(frame);
      } else if (frame.type === "error") {
        showError(frame.detail + " (" + frame.code + ")");
      }
    });
    socket.addEventListener("close", () => {
      const delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
      attempt += 1;
      setState("reconnecting", "reconnecting…");
      workerLabel.textContent = "";
      setTimeout(connect, delay);
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError("not connected; your message was not sent");
      return;
    }
    showError("");
    socket.send(JSON.stringify({ type: "message", body: input.value }));
    input.value = "";
  });

  connect();
})();
