// The demo page: one image in, every attribute's probability out, drawn as bars with the
// model's thresholds. It calls the same /predict and /metadata as any client (relative URLs,
// so it also works behind a path prefix).

const $ = (id) => document.getElementById(id);
let thresholds = {};

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// The service answers every error as {"error": code, "message": text}.
async function failure(response) {
  if (response.status === 401) $("auth").open = true;
  try {
    const body = await response.json();
    return `${response.status} ${body.error}: ${body.message}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadCard() {
  const response = await fetch("metadata", { headers: authHeaders() });
  if (!response.ok) {
    showError(await failure(response));
    return;
  }
  const card = await response.json();
  thresholds = card.thresholds;
  $("model").textContent = card.model;
}

function bar({ name, probability, present }) {
  const row = document.createElement("li");
  row.className = present ? "bar present" : "bar";
  row.dataset.name = name;
  row.dataset.probability = String(probability);
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name.replaceAll("_", " ");
  const track = document.createElement("span");
  track.className = "track";
  const fill = document.createElement("span");
  fill.className = "fill";
  fill.style.width = `${probability * 100}%`;
  track.append(fill);
  if (name in thresholds) {
    const marker = document.createElement("span");
    marker.className = "threshold";
    marker.dataset.threshold = String(thresholds[name]);
    marker.style.left = `${thresholds[name] * 100}%`;
    marker.title = `threshold ${thresholds[name].toFixed(3)}`;
    track.append(marker);
  }
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = probability.toFixed(3);
  row.append(label, track, value);
  return row;
}

async function classify(file) {
  showError("");
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  $("drop-hint").hidden = true;
  if (Object.keys(thresholds).length === 0) await loadCard(); // e.g. a token entered since
  const form = new FormData();
  form.append("image", file, file.name);
  const started = performance.now();
  const response = await fetch("predict", { method: "POST", body: form, headers: authHeaders() });
  const elapsed = performance.now() - started;
  if (!response.ok) {
    showError(await failure(response));
    return;
  }
  const prediction = await response.json();
  $("model").textContent = prediction.model;
  $("latency").textContent = `${elapsed.toFixed(0)} ms (round trip)`;
  $("present").textContent = prediction.present.length
    ? prediction.present.join(", ").replaceAll("_", " ")
    : "none";
  $("bars").replaceChildren(...prediction.attributes.map(bar));
}

$("file").addEventListener("change", () => {
  if ($("file").files.length) classify($("file").files[0]);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) classify(event.dataTransfer.files[0]);
});
loadCard();
