// Live tenant page: server-sent events from the session pool update the state, the QR code and the groups.
(function () {
  "use strict";
  var card = document.getElementById("status-card");
  if (!card || !window.EventSource) return;
  var $ = function (id) { return document.getElementById(id); };
  var labels = { stopped: "not connected", connecting: "connecting…", pairing: "waiting for the phone", connected: "connected",
    reconnecting: "reconnecting…", logged_out: "logged out", replaced: "replaced by another session", failed: "failed" };
  var expiresAt = null;
  var lastState = $("state").dataset.state;

  function tick() {
    var countdown = $("countdown");
    if (!countdown || expiresAt === null) return;
    countdown.textContent = String(Math.max(0, Math.round((expiresAt - Date.now()) / 1000)));
  }
  var initial = $("countdown") && parseInt($("countdown").dataset.expiresIn, 10);
  if (initial > 0) expiresAt = Date.now() + initial * 1000;
  setInterval(tick, 1000);

  function refreshGroups() {
    fetch(card.dataset.groups, { credentials: "same-origin" }).then(function (response) {
      return response.ok ? response.text() : Promise.reject(response.status);
    }).then(function (html) { $("groups").innerHTML = html; }).catch(function () {});
  }

  function apply(update) {
    var state = $("state");
    state.dataset.state = update.state;
    state.textContent = labels[update.state] || update.state;
    $("me").textContent = update.me || "";
    $("last-error").textContent = update.last_error || "";
    var pairing = $("pairing-card");
    pairing.hidden = update.state === "connected" || update.state === "connecting" && !!update.me || update.state === "reconnecting";
    if (update.qr_svg) {
      $("qr").innerHTML = update.qr_svg;
      $("qr-box").hidden = false;
      $("start-pairing").hidden = true;
      expiresAt = Date.now() + update.expires_in * 1000;
      tick();
    } else {
      $("qr-box").hidden = true;
      $("start-pairing").hidden = update.state === "pairing" || update.state === "connecting";
      if (update.state === "stopped" && update.last_error) {
        $("start-button").textContent = "Restart pairing";
        $("pairing-hint").textContent = "The QR codes ran out before a phone scanned one.";
      }
    }
    if (update.state === "connected" && lastState !== "connected") refreshGroups();
    lastState = update.state;
  }

  // The message list reads the tenant's event log every few seconds.
  var messages = $("messages-card");
  function refreshMessages() {
    fetch(messages.dataset.messages, { credentials: "same-origin" }).then(function (response) {
      return response.ok ? response.text() : Promise.reject(response.status);
    }).then(function (html) { $("messages").innerHTML = html; }).catch(function () {});
  }
  if (messages) setInterval(refreshMessages, 3000);

  var source = new EventSource(card.dataset.events);
  source.addEventListener("status", function (event) { apply(JSON.parse(event.data)); });
  source.onopen = function () { $("live-state").textContent = "on"; };
  source.onerror = function () { $("live-state").textContent = "lost — retrying (reload if this persists)"; };
})();
