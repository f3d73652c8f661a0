// Live view of a retraining round: joins the job's Socket.IO room ("watch_job") and renders every
// "job_progress" snapshot the server relays from the job table: status, phase, steps, loss, ETA,
// the loss curve (an SVG polyline) and, at the end, the new version. Text goes in via textContent.

import { io } from "/static/vendor/socket.io.esm.min.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const ACK_TIMEOUT_MS = 10000;
const PAD = 8;

const root = document.querySelector("[data-job-id]");
const jobId = Number(root.dataset.jobId);
const field = (name) => root.querySelector(`[data-field="${name}"]`);

export function formatEta(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// (step, loss) pairs -> "x,y x,y ..." scaled into the SVG's box (higher loss higher up).
export function curvePoints(curve, width, height) {
  if (!Array.isArray(curve) || curve.length < 2) return "";
  const xs = curve.map((p) => p[0]);
  const ys = curve.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (width - 2 * PAD) / (x1 - x0 || 1);
  const sy = (height - 2 * PAD) / (y1 - y0 || 1);
  return curve
    .map(([x, y]) => `${(PAD + (x - x0) * sx).toFixed(1)},${(height - PAD - (y - y0) * sy).toFixed(1)}`)
    .join(" ");
}

function drawCurve(curve) {
  const svg = field("curve");
  const width = Number(svg.getAttribute("width"));
  const height = Number(svg.getAttribute("height"));
  let line = svg.querySelector("polyline");
  if (!line) {
    line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#1f77b4");
    line.setAttribute("stroke-width", "2");
    svg.appendChild(line);
  }
  line.setAttribute("points", curvePoints(curve, width, height));
  let label = svg.querySelector("text");
  if (!label) {
    label = document.createElementNS(SVG_NS, "text");
    label.setAttribute("x", String(width - PAD));
    label.setAttribute("y", "18");
    label.setAttribute("text-anchor", "end");
    svg.appendChild(label);
  }
  const ys = (curve || []).map((p) => p[1]);
  label.textContent = ys.length ? `loss ${Math.min(...ys).toFixed(3)} – ${Math.max(...ys).toFixed(3)}` : "";
}

function renderResult(snapshot) {
  const cell = field("result");
  const id = snapshot.result && snapshot.result.version_id;
  if (!id) return;
  cell.replaceChildren();
  const link = document.createElement("a");
  link.setAttribute("href", `${root.dataset.versionsUrl}${Number(id)}`);
  link.textContent = `version ${Number(id)}: compare with its parent`;
  cell.appendChild(link);
  const parent = snapshot.result.parent || {};
  const child = snapshot.result.child || {};
  if (typeof parent["NoC@90"] === "number" && typeof child["NoC@90"] === "number") {
    const note = document.createElement("span");
    note.textContent = ` (held-out NoC@90 ${parent["NoC@90"].toFixed(2)} → ${child["NoC@90"].toFixed(2)})`;
    cell.appendChild(note);
  }
}

export function phaseText(p) {
  if (p.phase === "preparing" && p.images) return `preparing (${p.embedded || 0} / ${p.images} images embedded)`;
  if (p.phase === "evaluating" && p.objects) return `evaluating (${p.evaluated || 0} / ${p.objects} held-out masks)`;
  return p.phase || "";
}

export function render(snapshot) {
  const p = snapshot.progress || {};
  field("status").textContent = snapshot.status;
  field("phase").textContent = phaseText(p);
  root.dataset.status = snapshot.status;
  if (p.total) {
    const bar = field("bar");
    bar.max = p.total;
    bar.value = p.step || 0;
    field("steps").textContent = `${p.step || 0} / ${p.total}`;
  }
  if (typeof p.loss === "number") field("loss").textContent = p.loss.toFixed(4);
  const running = snapshot.status === "running" && p.phase === "training";
  field("eta").textContent = running ? formatEta(p.eta_s) : "";
  if (p.curve) drawCurve(p.curve);
  field("error").textContent = snapshot.error || "";
  renderResult(snapshot);
  const cancel = root.querySelector("form");
  if (cancel && !["queued", "running"].includes(snapshot.status)) cancel.hidden = true;
}

const socket = io({ path: "/socket.io", withCredentials: true });
socket.on("connect", async () => {
  field("connection").textContent = "live";
  try {
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("watch_job", { job_id: jobId });
    if (ack.ok) render(ack);
    else field("error").textContent = ack.error;
  } catch (err) {
    field("connection").textContent = `no answer: ${err.message}`;
  }
});
socket.on("disconnect", (reason) => {
  field("connection").textContent = `disconnected (${reason})`;
});
socket.on("job_progress", (snapshot) => {
  if (snapshot.job_id === jobId) render(snapshot);
});
