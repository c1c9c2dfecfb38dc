// Copy buttons (the study page's link for a message): a button with `data-copy` (the id of a
// read-only field) copies that field's value and says so in the element named by
// `data-status`. The buttons are hidden until this script shows them: without it the field is
// still there to select and copy by hand. A file of its own: the portal's CSP allows no
// inline script.
"use strict";

async function copyField(button) {
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.status);
  field.focus();
  field.select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    copied = document.execCommand("copy");
  }
  if (status) status.textContent = copied ? button.dataset.copied : button.dataset.failed;
  button.focus();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", () => copyField(button));
  }
});
