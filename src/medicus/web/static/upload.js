/* The chart's document upload: the file goes to /portal/uploads by tus (tus-js-client,
   vendored), in 8 MiB requests that are retried after a dropped connection; a reloaded page
   resumes the same file where it stopped (tus-js-client keeps the upload's address in
   localStorage until it succeeds). When the last byte is in, the form files the document
   with the stored object's id (a normal POST with its CSRF token). Every text shown comes
   translated from the form's data attributes. */
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.tus) {
    return;
  }
  var file = document.getElementById("upload-file");
  var stored = document.getElementById("upload-object");
  var start = document.getElementById("upload-start");
  var pause = document.getElementById("upload-pause");
  var resume = document.getElementById("upload-resume");
  var box = document.getElementById("upload-progress-box");
  var bar = document.getElementById("upload-progress");
  var percentText = document.getElementById("upload-percent");
  var status = document.getElementById("upload-status");
  var percent = new Intl.NumberFormat(document.documentElement.lang || "en", {
    style: "percent",
    maximumFractionDigits: 0
  });
  var upload = null;
  var share = 0;
  var finished = null;

  function say(text, failed) {
    status.textContent = text;
    status.classList.toggle("field-error", Boolean(failed));
  }

  function shown(text) {
    return text.replace("{percent}", percent.format(share));
  }

  function running(yes) {
    start.disabled = yes;
    file.disabled = yes;
    pause.hidden = !yes;
    resume.hidden = true;
  }

  function failure(error) {
    var response = error && error.originalResponse;
    var code = response ? response.getStatus() : 0;
    var messages = { 401: "expired", 413: "tooLarge", 415: "refusedType", 507: "quota" };
    running(false);
    say(form.dataset[messages[code] || "failed"], true);
  }

  function begin(chosen) {
    finished = null;
    upload = new window.tus.Upload(chosen, {
      endpoint: form.dataset.endpoint,
      headers: { "X-CSRF-Token": form.dataset.csrf },
      retryDelays: [0, 1000, 3000, 5000, 10000],
      removeFingerprintOnSuccess: true,
      chunkSize: 8 * 1024 * 1024,
      metadata: { filename: chosen.name, filetype: chosen.type || "application/octet-stream" },
      onProgress: function (sent, total) {
        share = total ? sent / total : 1;
        bar.value = Math.round(share * 100);
        percentText.textContent = percent.format(share);
        say(shown(form.dataset.progress));
      },
      onShouldRetry: function () {
        say(form.dataset.retrying);
        return true;
      },
      onAfterResponse: function (request, response) {
        var named = response.getHeader("Medicus-Object");
        if (named) {
          finished = named;
        }
      },
      onError: failure,
      onSuccess: function () {
        if (!finished) {
          failure(null);
          return;
        }
        share = 1;
        bar.value = 100;
        percentText.textContent = percent.format(1);
        say(form.dataset.filing);
        stored.value = finished;
        form.submit();
      }
    });
    box.hidden = false;
    running(true);
    upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
      }
      upload.start();
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!form.reportValidity() || !file.files.length) {
      return;
    }
    begin(file.files[0]);
  });

  pause.addEventListener("click", function () {
    if (!upload) {
      return;
    }
    upload.abort();
    pause.hidden = true;
    resume.hidden = false;
    say(shown(form.dataset.paused));
    resume.focus();
  });

  resume.addEventListener("click", function () {
    if (!upload) {
      return;
    }
    running(true);
    pause.focus();
    upload.start();
  });
})();
