// The demo page: a photo in, each face found in it boxed over the preview, and the chosen face's
// attributes drawn as bars with the model's thresholds. It calls the same /detect, /predict and
// /metadata as any client (relative URLs, so it also works behind a path prefix).

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
    // The demo model's card says it learned from the generated set: its answers are only a demo.
    $("synthetic-model").hidden = card.dataset?.kind !== "synthetic";
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

function showAttributes({ attributes, present }) {
  $("present").textContent = present.length ? present.join(", ").replaceAll("_", " ") : "none";
  $("bars").replaceChildren(...attributes.map(bar));
}

function showNote(message) {
  $("faces-note").textContent = message;
  $("faces-note").hidden = !message;
}

function clearResults() {
  showError("");
  showNote("");
  $("latency").textContent = "-";
  $("present").textContent = "-";
  $("bars").replaceChildren();
  $("boxes").replaceChildren();
  $("faces").replaceChildren();
  $("faces").hidden = true;
}

function showPreview(file) {
  URL.revokeObjectURL($("preview").src);
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  $("drop-hint").hidden = true;
}

// The faces /detect found in the latest image, largest first.
let faces = [];

// Each face's box and five landmarks over the preview, in % of the image's natural size (the
// box's pixels, after EXIF orientation, as the browser shows it), so that they follow the preview
// at any size; and a button per face, for the keyboard.
function drawFaces() {
  const { naturalWidth: width, naturalHeight: height } = $("preview");
  const at = (x, y) => ({ left: `${(100 * x) / width}%`, top: `${(100 * y) / height}%` });
  const marks = faces.flatMap(({ box: [left, top, right, bottom], landmarks }, index) => {
    const box = document.createElement("span");
    box.className = "box";
    box.dataset.face = String(index);
    box.title = `Face ${index + 1}`;
    box.dataset.number = String(index + 1);
    Object.assign(box.style, at(left, top), {
      width: `${(100 * (right - left)) / width}%`,
      height: `${(100 * (bottom - top)) / height}%`,
    });
    const dots = Object.values(landmarks).map(([x, y]) => {
      const dot = document.createElement("span");
      dot.className = "landmark";
      Object.assign(dot.style, at(x, y));
      return dot;
    });
    return [box, ...dots];
  });
  if (width && height) $("boxes").replaceChildren(...marks); // else the browser cannot show it
  $("faces").replaceChildren(
    ...faces.map((_, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.face = String(index);
      button.textContent = `Face ${index + 1}`;
      return button;
    }),
  );
  $("faces").hidden = false;
}

function select(index) {
  showAttributes(faces[index]);
  for (const element of document.querySelectorAll("[data-face]")) {
    const chosen = Number(element.dataset.face) === index;
    element.classList.toggle("selected", chosen);
    if (element.tagName === "BUTTON") element.setAttribute("aria-pressed", String(chosen));
  }
}

// Only the latest image's answer is drawn: an earlier, slower answer must not replace it.
let latest = 0;

// The image POSTed to a route: its answer and round-trip time, or null when it failed (the
// error is shown) or a newer image has been chosen since.
async function post(route, file, request) {
  const form = new FormData();
  form.append("image", file, file.name);
  const started = performance.now();
  let response;
  try {
    response = await fetch(route, { method: "POST", body: form, headers: authHeaders() });
  } catch (error) {
    // e.g. the server is gone, or it closed the connection on a body over its size limit
    if (request === latest) showError(`the server did not answer: ${error.message}`);
    return null;
  }
  const elapsed = performance.now() - started;
  if (request !== latest) return null;
  if (!response.ok) {
    const message = await failure(response);
    if (request === latest) showError(message);
    return null;
  }
  const answer = await response.json();
  return request === latest ? { answer, elapsed } : null;
}

async function classify(file) {
  const request = ++latest;
  clearResults();
  showPreview(file);
  const detected = await post("detect", file, request);
  if (!detected) return;
  // No face found: the whole image, as /predict takes it (an aligned face crop, say).
  const shown = detected.answer.faces.length ? detected : await post("predict", file, request);
  if (!shown) return;
  if (shown.answer.model !== cardModel) await loadCard(); // first use, or the server swapped models
  await $("preview").decode().catch(() => {}); // its natural size, to place the boxes
  if (request !== latest) return;
  $("model").textContent = shown.answer.model;
  $("latency").textContent = `${shown.elapsed.toFixed(0)} ms (round trip)`;
  faces = detected.answer.faces;
  const noFace = "No face found: the bars are for the whole image, taken as one aligned face.";
  showNote(detected.answer.capped ?? (faces.length ? "" : noFace));
  if (!faces.length) {
    showAttributes(shown.answer);
    return;
  }
  drawFaces();
  select(0);
}

// A face is chosen by its box or its button; the box's click must not open the file picker.
$("boxes").addEventListener("click", (event) => {
  const box = event.target.closest(".box");
  if (!box) return;
  event.preventDefault();
  select(Number(box.dataset.face));
});
$("faces").addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (button) select(Number(button.dataset.face));
});

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
