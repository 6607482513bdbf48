// The page works without this script (the form posts to /ui and the server answers a
// whole page). With it: the result comes in place, files can be dropped on the text
// box, and "Copy" puts the result on the clipboard.
"use strict";
(function () {
  const form = document.getElementById("form");
  const text = document.getElementById("text");
  const file = document.getElementById("file");
  const status = document.getElementById("status");
  const result = document.getElementById("result");
  const submit = document.getElementById("submit");
  // Copying needs this script, so its buttons show only with it.
  const reveal = () => result.querySelectorAll("button.copy").forEach((b) => { b.hidden = false; });
  reveal();

  // A dropped file goes to the file input, so the server reads it with its own
  // charset detection (Windows-1251 and KOI8-R included).
  ["dragenter", "dragover"].forEach((t) =>
    text.addEventListener(t, (e) => { e.preventDefault(); text.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((t) =>
    text.addEventListener(t, () => text.classList.remove("dragging")));
  text.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) {
      file.files = e.dataTransfer.files;
      status.textContent = "File: " + e.dataTransfer.files[0].name;
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    status.textContent = "Working…";
    try {
      const res = await fetch("/ui?fragment=1", { method: "POST", body: new FormData(form) });
      result.innerHTML = await res.text();
      reveal();
      status.textContent = res.ok ? "" : "Failed (" + res.status + ")";
    } catch (err) {
      result.innerHTML = "";
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = "The server could not be reached: " + err;
      result.appendChild(p);
      status.textContent = "";
    } finally {
      submit.disabled = false;
    }
  });

  result.addEventListener("click", async (e) => {
    const button = e.target.closest("button.copy");
    if (!button) return;
    const source = document.getElementById("result-text");
    try {
      await navigator.clipboard.writeText(source.value);
      button.textContent = "Copied";
    } catch (err) {
      source.hidden = false;
      source.select();
      button.textContent = "Select and copy";
    }
  });
})();
