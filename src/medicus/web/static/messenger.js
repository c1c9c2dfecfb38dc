/* The portal's messages page (docs/portal.md, messages): a Matrix client in the page, built on
   matrix-js-sdk (vendored, the global `matrixcs`), talking to the Messenger-Proxy at
   /_matrix on this origin.

   Session: the page asks the portal for a login token (POST /portal/messages/session with
   the page's CSRF token in X-CSRF-Token) and logs in at /_matrix/client/v3/login with it;
   the access token stays in sessionStorage (this tab only, gone with it), is checked on the
   next page load (whoami) and used again while it works. A stored session of another user
   is logged out first. Logging out of the portal logs this session out of Matrix too; the
   token logs in only the device the portal names (grant.device_id), which medicus logs out
   in Synapse when the browser session ends, whichever page it ends on.

   Rooms: joined ones and invitations (accepted with a button), newest activity first; the
   chosen room's timeline shows its text and file messages, newest at the bottom. Files go
   to the media repository (POST /_matrix/media/v3/upload, with a progress bar) and are
   sent as m.file (m.image for images); a download fetches the authenticated media API with
   the access token as a header and saves the bytes from an object URL. Every text shown
   comes translated from the data attributes of #messenger.

   End-to-end encryption: matrix-js-sdk's Rust crypto (its WebAssembly from our own static
   files, which is why this page's CSP has 'wasm-unsafe-eval'). Its keys live in IndexedDB,
   one store per user and device ("medicus.messenger.crypto:<user>:<device>"), encrypted with
   a random key kept beside the access token in sessionStorage: a reload of the tab opens the
   same store, a closed tab leaves ciphertext nobody can open, and logging out of the portal
   deletes this origin's stores. Rooms the page starts carry m.room.encryption (megolm) from
   their first state on; messages go to every device of the members, unverified ones too
   (the Rust crypto's default). Files in an encrypted room are encrypted in the page first
   (AES-CTR-256, matrix-encrypt-attachment) and sent as content.file; a download decrypts
   them in the page, and checks their SHA-256. A message whose keys this device never got
   says so.

   Key backup: every portal login is a new device with an empty store, so the room keys go
   to the account's server-side backup (m.megolm_backup.v1.curve25519-aes-sha2), whose
   decryption key medicus keeps for the user (GET/PUT /portal/messages/backup-key,
   docs/messenger.md). After the crypto starts, the page asks medicus for it: if it opens the
   homeserver's current backup, the page caches it, enables the backup and restores the keys
   of earlier messages (matrix-js-sdk decrypts them again as they arrive); if medicus has
   none, or the backup on the server is another (deleted, or reset by another client), the
   page makes a new backup and gives its key to medicus. The Rust crypto then uploads each
   room key this device gets, after a random wait of up to two seconds (matrix-js-sdk's
   default of ten would lose the keys of a message read just before logging out). A failure
   leaves the chat working, without the backup. */
(function () {
  "use strict";

  var root = document.getElementById("messenger");
  var sdk = window.matrixcs;
  if (!root || !sdk) {
    return;
  }
  var texts = root.dataset;
  var STORED = "medicus.messenger.session";
  var origin = window.location.origin;
  var language = document.documentElement.lang || "en";
  var when = new Intl.DateTimeFormat(language, { dateStyle: "short", timeStyle: "short" });
  var percent = new Intl.NumberFormat(language, { style: "percent", maximumFractionDigits: 0 });
  var status = document.getElementById("messenger-status");
  var roomList = document.getElementById("room-list");
  var timeline = document.getElementById("timeline");
  var members = document.getElementById("room-members");
  var heading = document.getElementById("conversation-heading");
  var untitled = heading.textContent;
  var composer = document.getElementById("composer");
  var earlier = document.getElementById("earlier");
  var text = document.getElementById("composer-text");
  var chooser = document.getElementById("composer-file");
  var progress = document.getElementById("file-progress");
  var bar = document.getElementById("file-progress-bar");
  var progressName = document.getElementById("file-progress-name");
  var progressStatus = document.getElementById("file-progress-status");
  var search = document.getElementById("contact-search");
  var query = document.getElementById("contact-query");
  var contactList = document.getElementById("contact-list");
  var contactStatus = document.getElementById("contact-status");
  var client = null;
  var session = null;
  var current = null;
  var NAMES = "medicus.messenger.names";
  var CRYPTO = "medicus.messenger.crypto:";
  var STORES = ["::matrix-sdk-crypto", "::matrix-sdk-crypto-meta"];
  var security = document.getElementById("room-security");
  // Room keys go to the backup within two seconds rather than ten (see above).
  sdk.RustBackupManager.maxBackupLoopStartDelayMillis = 2000;
  var profiles = readNames();

  function readNames() {
    // The names of the people found by the search in this tab: someone invited who has not
    // used the messenger yet has no profile to ask for.
    try {
      return JSON.parse(sessionStorage.getItem(NAMES) || "{}");
    } catch (ignored) {
      return {};
    }
  }

  function learnName(userId, name) {
    profiles[userId] = name;
    sessionStorage.setItem(NAMES, JSON.stringify(profiles));
  }

  function fill(template, key, value) {
    return template.replace("{" + key + "}", value);
  }

  function say(element, message, failed) {
    element.textContent = message;
    element.classList.toggle("field-error", Boolean(failed));
  }

  function reason(error) {
    return (error && (error.data && error.data.error)) || (error && error.message) || String(error);
  }

  function stored() {
    try {
      return JSON.parse(sessionStorage.getItem(STORED) || "null");
    } catch (ignored) {
      return null;
    }
  }

  function storePrefix(saved) {
    return CRYPTO + saved.user_id + ":" + saved.device_id;
  }

  function fromBase64(text) {
    return Uint8Array.from(atob(text), function (c) {
      return c.charCodeAt(0);
    });
  }

  function toBase64(bytes) {
    return btoa(String.fromCharCode.apply(null, bytes));
  }

  function storeKey(saved) {
    return fromBase64(saved.store_key);
  }

  function newStoreKey() {
    return toBase64(crypto.getRandomValues(new Uint8Array(32)));
  }

  function deleteDatabase(name) {
    // Another tab that still has the store open holds the deletion back until it closes it:
    // nobody waits for that longer than three seconds.
    return new Promise(function (resolve) {
      var request = indexedDB.deleteDatabase(name);
      request.onsuccess = request.onerror = resolve;
      setTimeout(resolve, 3000);
    });
  }

  async function forgetKeys(saved, everyone) {
    // The crypto store of `saved`'s device, or (`everyone`) every store of this page on this
    // origin, where the browser can list them.
    var names = [];
    if (everyone && indexedDB.databases) {
      names = (await indexedDB.databases().catch(function () {
        return [];
      }))
        .map(function (database) {
          return database.name;
        })
        .filter(function (name) {
          return name && name.indexOf(CRYPTO) === 0;
        });
    } else if (saved && saved.device_id) {
      names = STORES.map(function (suffix) {
        return storePrefix(saved) + suffix;
      });
    }
    await Promise.all(names.map(deleteDatabase));
  }

  function logOut(saved, keepalive) {
    sessionStorage.removeItem(STORED);
    sessionStorage.removeItem(NAMES);
    return fetch(origin + "/_matrix/client/v3/logout", {
      method: "POST",
      headers: { Authorization: "Bearer " + saved.access_token, "Content-Type": "application/json" },
      body: "{}",
      keepalive: Boolean(keepalive)
    }).catch(function () {});
  }

  async function usable(saved) {
    if (!saved || saved.user_id !== texts.user || !saved.access_token || !saved.store_key) {
      return false;
    }
    var answer = await fetch(origin + "/_matrix/client/v3/account/whoami", {
      headers: { Authorization: "Bearer " + saved.access_token }
    });
    return answer.ok;
  }

  async function logIn() {
    var saved = stored();
    if (await usable(saved)) {
      return saved;
    }
    if (saved && saved.access_token) {
      await logOut(saved, false);
      await forgetKeys(saved, false);
    }
    var issued = await fetch(texts.session, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": texts.csrf }
    });
    if (issued.status === 401) {
      throw new Error(texts.expired);
    }
    if (!issued.ok) {
      throw new Error(texts.sessionFailed);
    }
    var grant = await issued.json();
    var answer = await fetch(origin + "/_matrix/client/v3/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        type: "org.matrix.login.jwt",
        token: grant.token,
        device_id: grant.device_id,
        initial_device_display_name: "medicus portal"
      })
    });
    if (!answer.ok) {
      throw new Error(texts.sessionFailed);
    }
    var body = await answer.json();
    saved = {
      user_id: body.user_id,
      access_token: body.access_token,
      device_id: body.device_id,
      store_key: newStoreKey()
    };
    sessionStorage.setItem(STORED, JSON.stringify(saved));
    return saved;
  }

  document.querySelectorAll("form[action='/logout']").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      // The keys go with the session: the form is sent once the crypto stores are deleted.
      event.preventDefault();
      if (client) {
        client.stopClient();
      }
      var saved = stored();
      if (saved && saved.access_token) {
        logOut(saved, true);
      }
      forgetKeys(saved, true).then(function () {
        form.submit();
      });
    });
  });

  function rooms() {
    return client
      .getRooms()
      .filter(function (room) {
        var membership = room.getMyMembership();
        return membership === "join" || membership === "invite";
      })
      .sort(function (a, b) {
        return b.getLastActiveTimestamp() - a.getLastActiveTimestamp();
      });
  }

  function title(room) {
    // A room without a name of its own is called after the others in it (joined or
    // invited); matrix-js-sdk's own naming depends on the server's room summary.
    var named = room.currentState.getStateEvents("m.room.name", "");
    if (named && named.getContent().name) {
      return room.name;
    }
    var others = room.currentState
      .getMembers()
      .filter(function (member) {
        return (
          member.userId !== session.user_id &&
          (member.membership === "join" || member.membership === "invite")
        );
      })
      .map(function (member) {
        return nameOf(member);
      });
    return others.length ? others.join(", ") : room.name;
  }

  function nameOf(member) {
    // An invitation names no display name: ask the homeserver for the profile, once.
    if (member.name !== member.userId) {
      return member.name;
    }
    if (!(member.userId in profiles)) {
      profiles[member.userId] = member.userId;
      client.getProfileInfo(member.userId).then(
        function (profile) {
          if (profile.displayname) {
            learnName(member.userId, profile.displayname);
            refresh(client.getRoom(member.roomId));
          }
        },
        function () {}
      );
    }
    return profiles[member.userId];
  }

  function showRooms() {
    var found = rooms();
    roomList.replaceChildren();
    if (!found.length) {
      var empty = document.createElement("li");
      empty.className = "hint";
      empty.textContent = texts.noRooms;
      roomList.append(empty);
      return;
    }
    found.forEach(function (room) {
      var entry = document.createElement("li");
      var open = document.createElement("button");
      open.type = "button";
      open.className = "room";
      open.textContent = title(room);
      open.dataset.room = room.roomId;
      if (room.roomId === current) {
        open.setAttribute("aria-current", "true");
      }
      open.addEventListener("click", function () {
        choose(room.roomId);
      });
      entry.append(open);
      if (room.getMyMembership() === "invite") {
        var mark = document.createElement("span");
        mark.className = "invited";
        mark.textContent = texts.invited;
        var accept = document.createElement("button");
        accept.type = "button";
        accept.className = "secondary accept";
        accept.textContent = texts.accept;
        accept.setAttribute("aria-label", texts.accept + ": " + title(room));
        accept.addEventListener("click", function () {
          accept.disabled = true;
          client.joinRoom(room.roomId).then(
            function () {
              choose(room.roomId);
            },
            function (error) {
              accept.disabled = false;
              say(status, fill(texts.refused, "reason", reason(error)), true);
            }
          );
        });
        entry.append(mark, accept);
      }
      roomList.append(entry);
    });
  }

  function choose(roomId) {
    current = roomId;
    showRooms();
    showTimeline();
  }

  function senderName(room, event) {
    if (event.getSender() === session.user_id) {
      return texts.you;
    }
    var member = room.getMember(event.getSender());
    return member ? member.name : event.getSender();
  }

  function fileItem(content) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary download";
    var name = content.filename || content.body || "file";
    button.textContent = fill(texts.download, "name", name);
    button.addEventListener("click", function () {
      download(content, name, button);
    });
    return button;
  }

  function isFile(content) {
    var kind = content.msgtype === "m.file" || content.msgtype === "m.image";
    return kind && Boolean(content.url || (content.file && content.file.url));
  }

  function messageItem(room, event) {
    var content = event.getContent();
    var item = document.createElement("li");
    item.className = event.getSender() === session.user_id ? "message own" : "message";
    // Encrypting or on its way (a local echo): shown, but not yet on the server.
    var pending = event.status && event.status !== "sent";
    item.classList.toggle("pending", Boolean(pending));
    var who = document.createElement("span");
    who.className = "sender";
    who.textContent = senderName(room, event);
    var time = document.createElement("time");
    time.dateTime = new Date(event.getTs()).toISOString();
    time.textContent = when.format(new Date(event.getTs()));
    var body = document.createElement("div");
    body.className = "body";
    if (event.isDecryptionFailure()) {
      body.className = "body hint undecryptable";
      body.textContent = texts.undecryptable;
    } else if (event.getType() === "m.room.encrypted") {
      body.className = "body hint";
      body.textContent = texts.decrypting;
    } else if (isFile(content)) {
      body.append(fileItem(content));
    } else {
      body.append(withPortalLinks(content.body || ""));
    }
    item.append(who, time, body);
    return item;
  }

  // Addresses of this portal in a message (a shared imaging study, say) become links; the
  // rest stays text: messages never bring markup, and other sites' addresses are not made
  // clickable in a clinical chat.
  function withPortalLinks(text) {
    var fragment = document.createDocumentFragment();
    var portal = origin + "/portal/";
    var address = /https?:\/\/[^\s<>"]+/g;
    var done = 0;
    var found;
    while ((found = address.exec(text)) !== null) {
      var target = found[0].replace(/[.,;:!?)]+$/, "");
      if (target.indexOf(portal) !== 0) {
        continue;
      }
      fragment.append(text.slice(done, found.index));
      var link = document.createElement("a");
      link.href = target;
      link.textContent = target;
      fragment.append(link);
      done = found.index + target.length;
    }
    fragment.append(text.slice(done));
    return fragment;
  }

  function showTimeline(keepPlace) {
    var room = current && client.getRoom(current);
    if (!room) {
      earlier.hidden = true;
      heading.textContent = untitled;
      timeline.replaceChildren();
      members.textContent = texts.choose;
      composer.hidden = true;
      return;
    }
    heading.textContent = title(room);
    var names = room.getJoinedMembers().map(function (member) {
      return member.userId === session.user_id ? texts.you : member.name;
    });
    members.textContent = fill(texts.members, "names", names.join(", "));
    security.hidden = !room.hasEncryptionStateEvent();
    var events = room
      .getLiveTimeline()
      .getEvents()
      .filter(function (event) {
        var type = event.getType();
        return (type === "m.room.message" || type === "m.room.encrypted") && !event.isRedacted();
      });
    timeline.replaceChildren();
    if (!events.length) {
      var empty = document.createElement("li");
      empty.className = "hint";
      empty.textContent = texts.noMessages;
      timeline.append(empty);
    }
    events.forEach(function (event) {
      timeline.append(messageItem(room, event));
    });
    if (!keepPlace) {
      timeline.scrollTop = timeline.scrollHeight;
    }
    composer.hidden = room.getMyMembership() !== "join";
    earlier.hidden = room.getMyMembership() !== "join" || !room.getLiveTimeline().getPaginationToken("b");
  }

  async function download(content, name, button) {
    // An encrypted file (content.file) comes as ciphertext and is decrypted here, which also
    // checks its SHA-256 against the one the message names.
    var mxc = content.file ? content.file.url : content.url;
    var url = client.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true);
    var label = button.textContent;
    button.disabled = true;
    button.textContent = texts.downloading;
    try {
      var answer = await fetch(url, { headers: { Authorization: "Bearer " + session.access_token } });
      if (!answer.ok) {
        throw new Error(String(answer.status));
      }
      var blob;
      if (content.file) {
        var plain = await sdk.decryptAttachment(await answer.arrayBuffer(), content.file);
        var type = (content.info && content.info.mimetype) || "application/octet-stream";
        blob = new Blob([plain], { type: type });
      } else {
        blob = await answer.blob();
      }
      var address = URL.createObjectURL(blob);
      var link = document.createElement("a");
      link.href = address;
      link.download = name;
      link.hidden = true;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(function () {
        URL.revokeObjectURL(address);
      }, 60000);
      button.textContent = label;
    } catch (error) {
      button.textContent = label;
      say(status, texts.downloadFailed, true);
    } finally {
      button.disabled = false;
    }
  }

  earlier.addEventListener("click", function () {
    var room = current && client.getRoom(current);
    if (!room) {
      return;
    }
    earlier.disabled = true;
    client.scrollback(room, 30).then(
      function () {
        earlier.disabled = false;
        showTimeline(true);
        timeline.scrollTop = 0;
      },
      function (error) {
        earlier.disabled = false;
        say(status, fill(texts.refused, "reason", reason(error)), true);
      }
    );
  });

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var message = text.value.trim();
    if (!message || !current) {
      return;
    }
    client.sendTextMessage(current, message).then(
      function () {
        text.value = "";
      },
      function (error) {
        say(status, fill(texts.sendFailed, "reason", reason(error)), true);
      }
    );
  });

  text.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  chooser.addEventListener("change", async function () {
    var file = chooser.files && chooser.files[0];
    var roomId = current;
    if (!file || !roomId) {
      return;
    }
    progress.hidden = false;
    bar.value = 0;
    progressName.textContent = file.name;
    say(progressStatus, fill(texts.progress, "percent", percent.format(0)));
    var type = file.type || "application/octet-stream";
    var room = client.getRoom(roomId);
    try {
      // In an encrypted room the server gets only ciphertext, without the file's name or type:
      // both, with the key, go inside the encrypted message.
      var sealed = room && room.hasEncryptionStateEvent()
        ? await sdk.encryptAttachment(await file.arrayBuffer())
        : null;
      var upload = sealed ? new Blob([sealed.data], { type: "application/octet-stream" }) : file;
      var uploaded = await client.uploadContent(upload, {
        name: sealed ? undefined : file.name,
        includeFilename: !sealed,
        type: sealed ? "application/octet-stream" : type,
        progressHandler: function (state) {
          var share = state.total ? state.loaded / state.total : 0;
          bar.value = Math.round(share * 100);
          say(progressStatus, fill(texts.progress, "percent", percent.format(share)));
        }
      });
      var image = /^image\/(png|jpeg|gif|webp)$/.test(file.type);
      var content = {
        msgtype: image ? "m.image" : "m.file",
        body: file.name,
        filename: file.name,
        info: { size: file.size, mimetype: type }
      };
      if (sealed) {
        content.file = Object.assign({ url: uploaded.content_uri }, sealed.info);
      } else {
        content.url = uploaded.content_uri;
      }
      await client.sendMessage(roomId, content);
      bar.value = 100;
      say(progressStatus, texts.sent);
    } catch (error) {
      var large = error && (error.errcode === "M_TOO_LARGE" || error.httpStatus === 413);
      say(progressStatus, large ? texts.tooLarge : fill(texts.sendFailed, "reason", reason(error)), true);
    } finally {
      chooser.value = "";
    }
  });

  search.addEventListener("submit", async function (event) {
    event.preventDefault();
    var answer = await fetch(texts.contacts + "?q=" + encodeURIComponent(query.value.trim()), {
      credentials: "same-origin"
    });
    if (!answer.ok) {
      say(contactStatus, answer.status === 401 ? texts.expired : texts.sessionFailed, true);
      return;
    }
    var found = (await answer.json()).contacts;
    contactList.replaceChildren();
    say(contactStatus, found.length ? "" : texts.nobody);
    found.forEach(function (person) {
      learnName(person.user_id, person.name);
      var entry = document.createElement("li");
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = person.name;
      var place = document.createElement("span");
      place.className = "hint";
      place.textContent = person.organisation;
      var start = document.createElement("button");
      start.type = "button";
      start.className = "secondary";
      start.textContent = texts.start;
      start.setAttribute("aria-label", texts.start + ": " + person.name);
      start.addEventListener("click", function () {
        startChat(person, start);
      });
      entry.append(name, place, start);
      var room = current && client.getRoom(current);
      if (room && room.getMyMembership() === "join" && !room.getMember(person.user_id)) {
        var invite = document.createElement("button");
        invite.type = "button";
        invite.className = "secondary";
        invite.textContent = texts.invite;
        invite.setAttribute(
          "aria-label",
          fill(fill(texts.inviteTo, "name", person.name), "room", title(room))
        );
        invite.addEventListener("click", function () {
          inviteInto(room, person, invite);
        });
        entry.append(invite);
      }
      contactList.append(entry);
    });
  });

  async function inviteInto(room, person, button) {
    button.disabled = true;
    try {
      await client.invite(room.roomId, person.user_id);
      say(contactStatus, fill(texts.invitedTo, "name", person.name));
      button.remove();
    } catch (error) {
      button.disabled = false;
      say(contactStatus, fill(texts.refused, "reason", reason(error)), true);
    }
  }

  function rememberDirect(userId, roomId) {
    var known = client.getAccountData("m.direct");
    var direct = Object.assign({}, known ? known.getContent() : {});
    direct[userId] = (direct[userId] || []).concat([roomId]);
    return client.setAccountData("m.direct", direct).catch(function () {});
  }

  async function startChat(person, button) {
    button.disabled = true;
    try {
      var made = await client.createRoom({
        is_direct: true,
        invite: [person.user_id],
        preset: "trusted_private_chat",
        initial_state: [
          {
            type: "m.room.encryption",
            state_key: "",
            content: { algorithm: "m.megolm.v1.aes-sha2" }
          }
        ]
      });
      say(contactStatus, fill(texts.started, "name", person.name));
      rememberDirect(person.user_id, made.room_id);
      current = made.room_id;
      await new Promise(function (resolve) {
        var waited = 0;
        (function wait() {
          if (client.getRoom(made.room_id) || waited > 50) {
            resolve();
            return;
          }
          waited += 1;
          setTimeout(wait, 100);
        })();
      });
      choose(made.room_id);
      text.focus();
    } catch (error) {
      say(contactStatus, fill(texts.refused, "reason", reason(error)), true);
    } finally {
      button.disabled = false;
    }
  }

  function refresh(room) {
    showRooms();
    if (room && room.roomId === current) {
      showTimeline();
    }
  }

  async function serverBackup() {
    // The version of the account's current key backup on the homeserver, or null if it has
    // none (404); anything else fails, so that no backup is replaced for a passing error.
    var answer = await fetch(origin + "/_matrix/client/v3/room_keys/version", {
      headers: { Authorization: "Bearer " + session.access_token }
    });
    if (answer.status === 404) {
      return null;
    }
    if (!answer.ok) {
      throw new Error("key backup: " + answer.status);
    }
    return (await answer.json()).version;
  }

  async function keepKeys() {
    var keys = client.getCrypto();
    var held = await fetch(texts.backupKey, { credentials: "same-origin" });
    if (!held.ok && held.status !== 404) {
      throw new Error("backup key: " + held.status);
    }
    var mine = held.ok ? await held.json() : null;
    var version = await serverBackup();
    if (mine && mine.version === version) {
      await keys.storeSessionBackupPrivateKey(fromBase64(mine.key), version);
      var check = await keys.checkKeyBackupAndEnable();
      if (check && check.trustInfo.matchesDecryptionKey) {
        await keys.restoreKeyBackup();
        return;
      }
    }
    await keys.resetKeyBackup();
    var kept = await fetch(texts.backupKey, {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": texts.csrf },
      body: JSON.stringify({
        version: await keys.getActiveSessionBackupVersion(),
        key: toBase64(await keys.getSessionBackupPrivateKey())
      })
    });
    if (!kept.ok) {
      throw new Error("backup key: " + kept.status);
    }
  }

  async function start() {
    try {
      session = await logIn();
      client = sdk.createClient({
        baseUrl: origin,
        accessToken: session.access_token,
        userId: session.user_id,
        deviceId: session.device_id,
        store: new sdk.MemoryStore(),
        timelineSupport: true
      });
      // MatrixRTC (calls) is not offered here: no probe of its transports (MSC4143), which
      // Synapse answers with 404.
      client._unstable_getRTCTransports = function () {
        return Promise.resolve([]);
      };
      await sdk.initCryptoWasm(texts.cryptoWasm);
      await client.initRustCrypto({
        cryptoDatabasePrefix: storePrefix(session),
        storageKey: storeKey(session)
      });
    } catch (error) {
      say(status, error.message || texts.sessionFailed, true);
      return;
    }
    client.on(sdk.ClientEvent.Sync, function (state, previous) {
      if (state === "PREPARED" || (state === "SYNCING" && previous !== "SYNCING")) {
        say(status, texts.connected);
        if (state === "PREPARED") {
          showRooms();
          showTimeline();
        }
      } else if (state === "ERROR" || state === "RECONNECTING") {
        say(status, texts.offline, true);
      }
    });
    client.on(sdk.RoomEvent.Timeline, function (event, room) {
      refresh(room);
    });
    client.on(sdk.MatrixEventEvent.Decrypted, function (event) {
      refresh(client.getRoom(event.getRoomId()));
    });
    client.on(sdk.RoomEvent.LocalEchoUpdated, function (event, room) {
      refresh(room);
    });
    client.on(sdk.RoomEvent.MyMembership, refresh);
    client.on(sdk.RoomEvent.Name, refresh);
    client.on(sdk.RoomMemberEvent.Membership, function (event, member) {
      refresh(client.getRoom(member.roomId));
    });
    client.on(sdk.ClientEvent.Room, refresh);
    keepKeys().catch(function (error) {
      console.warn("The key backup is not in use:", reason(error));
    });
    await client.startClient({ initialSyncLimit: 50 });
  }

  start();
})();
