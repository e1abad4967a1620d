// Toneline video chat: text chat with the bot over a WebSocket, plus the customer's camera over WebRTC,
// only after they click the opt-in. The server reads expressions per message; nothing of the video is stored.
"use strict";

const $ = (id) => document.getElementById(id);
const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + base + "ws";
const state = { ws: null, pc: null, stream: null, sessionId: null, faceAvailable: false, handedOff: false };

function customerId() {
  const fromUrl = new URLSearchParams(location.search).get("customer");
  if (fromUrl) return fromUrl;
  let id = localStorage.getItem("toneline-customer");
  if (!id) {
    id = "web-" + Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("toneline-customer", id);
  }
  return id;
}

function show(text, cls) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function cameraStatus(text) { $("camera-status").textContent = text; }

function onMessage(event) {
  const m = JSON.parse(event.data);
  if (m.type === "ready") {
    state.sessionId = m.session_id;
    state.faceAvailable = m.face;
    document.body.dataset.session = m.session_id;
    $("status").textContent = "Connected.";
    if (!m.face) cameraStatus("Expression reading is not available on this server; chat works as usual.");
  } else if (m.type === "bot") {
    // After a handoff the bot stays quiet (the conversation is paused for the agent): no "(no reply)" lines.
    const texts = m.texts.length ? m.texts : state.handedOff ? [] : ["(no reply)"];
    for (const t of texts) {
      const div = show(t, "bot");
      div.dataset.tone = m.tone;
    }
    if (m.face) show(`expression this turn: ${m.face.label} (${Math.round(m.face.confidence * 100)}%)`, "meta");
    if (m.handoff && !state.handedOff) show("You are being connected to a person.", "meta");
    state.handedOff = state.handedOff || m.handoff;
  } else if (m.type === "answer") {
    if (state.pc) state.pc.setRemoteDescription({ type: "answer", sdp: m.sdp }).catch((e) => cameraFailed(e));
  } else if (m.type === "camera") {
    document.body.dataset.frames = m.frames;
    document.body.dataset.faces = m.faces;
    const words = { on: `Camera on: ${m.faces} expression readings so far.`, off: "Camera off.",
      lost: "Camera connection lost; chat goes on without it.", silent: "The camera sends no picture.",
      unavailable: "Expression reading is not available; chat goes on without it.",
      opted_out: "You turned emotion detection off, so the camera is not used." };
    cameraStatus(words[m.state] || m.state);
    if (m.state === "lost" || m.state === "unavailable" || m.state === "opted_out") stopCamera(false);
  } else if (m.type === "error") {
    show(`Problem: ${m.detail}`, "error");
  }
}

function connect() {
  const ws = new WebSocket(wsUrl);
  state.ws = ws;
  ws.onopen = () => send({ type: "hello", customer_id: customerId() });
  ws.onmessage = onMessage;
  ws.onclose = (e) => {
    $("status").textContent = `Disconnected (${e.reason || e.code}). Reload the page to chat again.`;
    stopCamera(false);
  };
}

function gatheringComplete(pc) {
  // Non-trickle ICE: the offer goes out with all candidates (the server answers once, with all of its own).
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

async function startCamera() {
  $("camera-on").disabled = true;
  cameraStatus("Asking for your camera...");
  try {
    // Only now, after the click, is the camera requested; only video, never the microphone.
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 15 } }, audio: false });
    $("preview").srcObject = state.stream;
    $("preview").style.display = "block";
    const pc = new RTCPeerConnection({ iceServers: [] });
    state.pc = pc;
    for (const track of state.stream.getVideoTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    send({ type: "offer", sdp: pc.localDescription.sdp });
    $("camera-off").hidden = false;
    cameraStatus("Connecting the camera...");
  } catch (e) {
    cameraFailed(e);
  }
}

function cameraFailed(e) {
  stopCamera(true);
  cameraStatus(`Camera not used (${e && e.name ? e.name : e}); chat goes on without it.`);
}

function stopCamera(tellServer) {
  const had = state.stream || state.pc;
  // Tell the server first: it drops the readings on the opt-out, not on a connection that merely ended.
  if (tellServer && had) send({ type: "camera_off" });
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  if (state.pc) state.pc.close();
  state.stream = null;
  state.pc = null;
  $("preview").srcObject = null;
  $("preview").style.display = "none";
  $("camera-on").disabled = false;
  $("camera-off").hidden = true;
}

$("camera-on").addEventListener("click", startCamera);
$("camera-off").addEventListener("click", () => { stopCamera(true); cameraStatus("Camera off."); });
$("chat").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  show(text, "customer");
  send({ type: "chat", text });
  $("text").value = "";
});
connect();
