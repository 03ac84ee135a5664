// The demo page: one image in, every attribute's probability out, drawn as bars with the
// model's thresholds. It calls the same /predict and /metadata as any client (relative URLs,
// so it also works behind a path prefix).

const $ = (id) => document.getElementById(id);
let thresholds = {};
let cardModel = ""; // the model the thresholds belong to

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
  try {
    const response = await fetch("metadata", { headers: authHeaders() });
    if (!response.ok) {
      $("model").textContent = response.status === 401 ? "needs the API token" : "unknown";
      showError(await failure(response));
      return;
    }
    const card = await response.json();
    thresholds = card.thresholds;
    cardModel = card.model;
    $("model").textContent = card.model;
  } catch (error) {
    showError(`the server did not answer: ${error.message}`);
  }
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

function clearResults() {
  showError("");
  $("latency").textContent = "-";
  $("present").textContent = "-";
  $("bars").replaceChildren();
}

function showPreview(file) {
  URL.revokeObjectURL($("preview").src);
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  $("drop-hint").hidden = true;
}

// Only the latest image's answer is drawn: an earlier, slower answer must not replace it.
let latest = 0;

async function classify(file) {
  const request = ++latest;
  clearResults();
  showPreview(file);
  const form = new FormData();
  form.append("image", file, file.name);
  const started = performance.now();
  let response;
  try {
    response = await fetch("predict", { method: "POST", body: form, headers: authHeaders() });
  } catch (error) {
    // e.g. the server is gone, or it closed the connection on a body over its size limit
    if (request === latest) showError(`the server did not answer: ${error.message}`);
    return;
  }
  const elapsed = performance.now() - started;
  if (request !== latest) return;
  if (!response.ok) {
    showError(await failure(response));
    return;
  }
  const prediction = await response.json();
  if (prediction.model !== cardModel) await loadCard(); // first use, or the server swapped models
  if (request !== latest) return;
  $("model").textContent = prediction.model;
  $("latency").textContent = `${elapsed.toFixed(0)} ms (round trip)`;
  $("present").textContent = prediction.present.length
    ? prediction.present.join(", ").replaceAll("_", " ")
    : "none";
  $("bars").replaceChildren(...prediction.attributes.map(bar));
}

$("file").addEventListener("change", () => {
  if ($("file").files.length) classify($("file").files[0]);
  $("file").value = ""; // so that choosing the same file again (say, after entering the token) sends it
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
