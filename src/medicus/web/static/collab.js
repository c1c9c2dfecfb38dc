/* The collaboration spaces' pages.

   Dialogs: a button with data-dialog opens the <dialog> of that id as a modal; a dialog
   marked data-open (the page after its form was sent) opens by itself.

   Uploads: files dropped on the folder's drop zone (or chosen) go one after the other to
   /portal/space-uploads by tus (tus-js-client, vendored) in 8 MiB requests that are retried
   after a dropped connection; each has its own progress bar and can be paused. Dropping the
   same file again after a failure, or its "Try again" button (offered unless the refusal
   is final: a bad name, no right, a name taken, too large, a refused type), resumes it where
   it stopped (tus-js-client keeps the upload's address in localStorage until it succeeds);
   an upload whose bytes all arrived but whose filing failed is only filed again. When the last byte is in, the upload
   is filed into the folder (a POST with the page's CSRF token) and the listing is reloaded
   (htmx). Every text shown comes translated from the drop zone's data attributes. */
(function () {
  "use strict";

  document.querySelectorAll("button[data-dialog]").forEach(function (button) {
    var dialog = document.getElementById(button.dataset.dialog);
    if (!dialog || !dialog.showModal) {
      return;
    }
    button.addEventListener("click", function () {
      dialog.showModal();
    });
  });
  document.querySelectorAll("dialog[data-open]").forEach(function (dialog) {
    if (dialog.showModal) {
      dialog.showModal();
    }
  });

  var zone = document.getElementById("drop-zone");
  if (!zone || !window.tus) {
    return;
  }
  var texts = zone.dataset;
  var chooser = document.getElementById("upload-files");
  var list = document.getElementById("upload-list");
  var percent = new Intl.NumberFormat(document.documentElement.lang || "en", {
    style: "percent",
    maximumFractionDigits: 0
  });
  var FINAL = [400, 403, 409, 413, 415];
  var queue = [];
  var busy = false;
  var count = 0;

  function item(file) {
    count += 1;
    var entry = document.createElement("li");
    var name = document.createElement("span");
    var bar = document.createElement("progress");
    var status = document.createElement("span");
    var toggle = document.createElement("button");
    name.className = "name";
    name.textContent = file.name;
    bar.id = "upload-progress-" + count;
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    status.className = "status";
    status.setAttribute("role", "status");
    status.textContent = texts.waiting;
    toggle.type = "button";
    toggle.className = "secondary";
    toggle.textContent = texts.pause;
    toggle.hidden = true;
    entry.append(name, bar, status, toggle);
    list.append(entry);
    return { file: file, entry: entry, bar: bar, status: status, toggle: toggle };
  }

  function say(job, text, failed) {
    job.status.textContent = text;
    job.status.classList.toggle("field-error", Boolean(failed));
  }

  function refreshListing() {
    if (window.htmx) {
      window.htmx.ajax("GET", texts.listing, { target: "#listing", swap: "innerHTML" });
    }
  }

  function next() {
    if (busy || !queue.length) {
      return;
    }
    busy = true;
    var job = queue.shift();
    if (job.address) {
      file(job, job.address);
    } else {
      send(job);
    }
  }

  function finished(job) {
    busy = false;
    job.toggle.hidden = true;
    next();
  }

  function failure(job, code) {
    var messages = {
      400: "invalid", 401: "expired", 403: "role", 409: "conflict", 413: "tooLarge",
      415: "refusedType", 423: "locked", 507: "quota"
    };
    say(job, texts[messages[code] || "failed"], true);
    finished(job);
    if (FINAL.indexOf(code) < 0) {
      offerRetry(job);
    }
  }

  function offerRetry(job) {
    job.toggle.hidden = false;
    job.toggle.textContent = texts.retry;
    job.toggle.onclick = function () {
      job.toggle.hidden = true;
      say(job, texts.waiting);
      queue.push(job);
      next();
    };
  }

  function file(job, address) {
    var form = new FormData();
    form.append("csrf", texts.csrf);
    form.append("upload", address);
    form.append("folder", texts.folder);
    say(job, texts.filing);
    fetch(texts.finish, { method: "POST", body: form, credentials: "same-origin" })
      .then(function (response) {
        if (response.status !== 201) {
          failure(job, response.status);
          return;
        }
        var link = document.createElement("a");
        link.href = response.headers.get("Location");
        link.textContent = job.file.name;
        job.entry.replaceChild(link, job.entry.querySelector(".name"));
        say(job, texts.done);
        refreshListing();
        finished(job);
      })
      .catch(function () {
        failure(job, 0);
      });
  }

  function send(job) {
    var share = 0;
    var upload = new window.tus.Upload(job.file, {
      endpoint: texts.endpoint,
      headers: { "X-CSRF-Token": texts.csrf },
      retryDelays: [0, 1000, 3000, 5000, 10000],
      removeFingerprintOnSuccess: true,
      chunkSize: 8 * 1024 * 1024,
      metadata: {
        filename: job.file.name,
        filetype: job.file.type || "application/octet-stream",
        space: texts.space
      },
      onProgress: function (sent, total) {
        share = total ? sent / total : 1;
        job.bar.value = Math.round(share * 100);
        say(job, texts.progress.replace("{percent}", percent.format(share)));
      },
      onShouldRetry: function () {
        say(job, texts.retrying);
        return true;
      },
      onError: function (error) {
        var response = error && error.originalResponse;
        failure(job, response ? response.getStatus() : 0);
      },
      onSuccess: function () {
        job.bar.value = 100;
        job.address = upload.url;
        file(job, upload.url);
      }
    });
    job.toggle.hidden = false;
    job.toggle.onclick = function () {
      if (job.toggle.textContent === texts.pause) {
        upload.abort();
        job.toggle.textContent = texts.resume;
      } else {
        job.toggle.textContent = texts.pause;
        upload.start();
      }
    };
    if (job.file.size > Number(texts.largest)) {
      failure(job, 413);
      return;
    }
    upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
      }
      upload.start();
    });
  }

  function take(files) {
    Array.prototype.forEach.call(files, function (chosen) {
      queue.push(item(chosen));
    });
    next();
  }

  zone.addEventListener("dragover", function (event) {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", function () {
    zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      take(event.dataTransfer.files);
    }
  });
  chooser.addEventListener("change", function () {
    take(chooser.files);
    chooser.value = "";
  });
})();
