// The room page: one WebSocket to /ws/chat/<room>/, the protocol of docs/protocol.md.
// Plain JS, no build step. A lost socket is reopened with exponential backoff
// and full jitter, resuming from the last offset seen (?after=<offset>&epoch=<epoch>);
// messages are shown in offset order, each once.
(function () {
  "use strict";

  // Reconnect delays, in milliseconds: a random wait in [0, min(CAP, BASE * 2^attempt)]
  // ("full jitter", from AWS's "Exponential Backoff and Jitter").
  const BACKOFF_BASE_MS = 250;
  const BACKOFF_CAP_MS = 10000;
  const SERVICE_RESTART = 1012;  // the worker is draining: come back at once

  const root = document.getElementById("chat");
  const room = root.dataset.room;
  const list = document.getElementById("messages");
  const state = document.getElementById("state");
  const workerLabel = document.getElementById("worker");
  const errorLine = document.getElementById("error");
  const online = document.getElementById("online");
  const form = document.getElementById("composer");
  const input = document.getElementById("body");

  let socket = null;
  let epoch = null;
  let offset = 0;      // every message up to this offset is on screen
  let attempt = 0;

  function setState(name, text) {
    state.dataset.state = name;
    state.textContent = text;
  }

  function showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = !text;
  }

  function show(message) {
    // The server sends each socket the room's messages in offset order; after
    // a reconnect the welcome may repeat some: drop what is already shown.
    if (message.offset <= offset) return;
    offset = message.offset;
    const item = document.createElement("li");
    item.dataset.offset = message.offset;
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

  function showPresence(users) {
    online.replaceChildren(...users.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    }));
  }

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const resume = epoch === null ? "" : "?after=" + offset + "&epoch=" + encodeURIComponent(epoch);
    return scheme + "//" + location.host + "/ws/chat/" + encodeURIComponent(room) + "/" + resume;
  }

  function onWelcome(frame) {
    attempt = 0;
    if (epoch !== null && !frame.recovered) {
      // Too much missed, or the history was reset: start over from the latest.
      list.replaceChildren();
      offset = 0;
      showError("Some messages could not be recovered; showing the latest.");
    }
    epoch = frame.epoch;
    frame.history.forEach(show);
    setState("connected", "connected");
    workerLabel.textContent = "worker " + frame.worker;
  }

  function connect() {
    setState(attempt ? "reconnecting" : "connecting", attempt ? "reconnecting…" : "connecting…");
    socket = new WebSocket(socketUrl());
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "welcome") onWelcome(frame);
      else if (frame.type === "message") show(frame);
      else if (frame.type === "presence") showPresence(frame.users);
      else if (frame.type === "error") showError(frame.detail + " (" + frame.code + ")");
    });
    socket.addEventListener("close", (event) => {
      const delay = event.code === SERVICE_RESTART && attempt === 0
        ? 0
        : Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
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
