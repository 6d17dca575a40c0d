// In-browser verification of an audit entry against the node's signed checkpoint.
//
// The browser does the maths itself with WebCrypto, so the auditor does not have to take the
// server's word: it hashes the entry bytes (RFC 9162 leaf hash), recomputes the tree root from
// the inclusion proof, and checks the C2SP signed-note signature (Ed25519) of the checkpoint
// whose root must match. Witness cosignatures (C2SP tlog-cosignature) are checked the same way.
// Hand-written: no library is shipped to the browser; the algorithms are short and specified.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("verify-config").textContent);
  const badge = document.getElementById("badge");
  const stepList = document.getElementById("verify-steps");
  const witnessList = document.getElementById("witnesses");
  const EM_DASH = "\u2014";
  const encoder = new TextEncoder();

  function step(text, state) {
    if (!stepList) return;
    const item = document.createElement("li");
    item.className = "step " + (state || "ok");
    item.textContent = text;
    stepList.appendChild(item);
  }

  function setBadge(state, text) {
    if (!badge) return;
    badge.className = "badge " + state;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  function b64decode(text) {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  function b64urlDecode(text) {
    const padded = text.replace(/-/g, "+").replace(/_/g, "/");
    return b64decode(padded + "===".slice((padded.length + 3) % 4));
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function fromHex(text) {
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
    return out;
  }

  function concat(...parts) {
    const total = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  // RFC 9162 2.1.1: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right).
  const leafHash = (entry) => sha256(concat(Uint8Array.of(0), entry));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  // RFC 9162 2.1.3.2: recompute the root from a leaf hash and its inclusion proof.
  async function rootFromInclusion(index, size, leaf, proof) {
    if (index >= size) throw new Error("index beyond tree size");
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const sibling of proof) {
      if (sn === 0) throw new Error("proof too long");
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(sibling, r);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await nodeHash(r, sibling);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("proof too short");
    return r;
  }

  // C2SP signed-note: text (ending in a newline), a blank line, then "— name base64" lines.
  function parseNote(note) {
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("not a signed note");
    const text = note.slice(0, split + 1);
    const signatures = note
      .slice(split + 2)
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => {
        const parts = line.split(" ");
        if (parts.length !== 3 || parts[0] !== EM_DASH) throw new Error("bad signature line");
        const blob = b64decode(parts[2]);
        return { name: parts[1], keyId: blob.slice(0, 4), signature: blob.slice(4) };
      });
    const lines = text.split("\n");
    return {
      text: text,
      signatures: signatures,
      origin: lines[0],
      size: Number(lines[1]),
      root: b64decode(lines[2]),
    };
  }

  // signed-note key id: SHA-256(name || 0x0A || type || public key)[:4].
  async function keyId(name, type, publicKey) {
    const digest = await sha256(concat(encoder.encode(name + "\n"), Uint8Array.of(type), publicKey));
    return digest.slice(0, 4);
  }

  function parseVerifierKey(vkey) {
    // name+keyid+base64: the base64 part may itself contain "+", so split at the first two only.
    const first = vkey.indexOf("+");
    const second = vkey.indexOf("+", first + 1);
    if (first < 1 || second < 0) throw new Error("malformed verifier key");
    const material = b64decode(vkey.slice(second + 1));
    if (material.length !== 33) throw new Error("malformed verifier key");
    return {
      name: vkey.slice(0, first),
      keyIdHex: vkey.slice(first + 1, second),
      type: material[0],
      publicKey: material.slice(1),
    };
  }

  // Ed25519 in WebCrypto: returns true/false, or null when the browser does not support it.
  async function ed25519Verify(publicKey, signature, message) {
    let key;
    try {
      key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (error) {
      return null;
    }
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  async function fetchJson(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error(url.split("?")[0] + " answered " + response.status);
    return response.json();
  }

  async function fetchCheckpoint(minSize) {
    // The node signs a checkpoint at least every second while entries arrive; wait for one
    // that covers the entry if it was appended a moment ago.
    for (let attempt = 0; attempt < 20; attempt++) {
      const response = await fetch("/v1/audit/checkpoint", { cache: "no-store" });
      if (!response.ok) throw new Error("checkpoint answered " + response.status);
      const note = await response.text();
      const vkey = response.headers.get("X-Verifier-Key");
      const parsed = parseNote(note);
      if (parsed.size >= minSize) return { note: parsed, raw: note, vkey: vkey };
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error("no checkpoint covers this entry yet");
  }

  // Checks the log's own signature on a note; returns "ok", "unsupported" or throws.
  async function checkLogSignature(note, logKey) {
    const expected = await keyId(logKey.name, 1, logKey.publicKey);
    const mine = note.signatures.filter((s) => s.name === logKey.name && equal(s.keyId, expected));
    if (mine.length === 0) throw new Error("the checkpoint is not signed by the log key");
    for (const sig of mine) {
      const valid = await ed25519Verify(logKey.publicKey, sig.signature, encoder.encode(note.text));
      if (valid === null) return "unsupported";
      if (!valid) throw new Error("the checkpoint signature does not verify");
    }
    return "ok";
  }

  async function checkLogKey(vkeyText) {
    const logKey = parseVerifierKey(vkeyText);
    const computed = hex(await keyId(logKey.name, logKey.type, logKey.publicKey));
    if (logKey.type !== 1 || computed !== logKey.keyIdHex) throw new Error("the log key is malformed");
    if (logKey.name !== config.origin) throw new Error("the log key names another log");
    if (config.pinned_key) {
      if (config.pinned_key !== vkeyText) throw new Error("the log key differs from the federation manifest");
      step("The log key matches the one the federation manifest publishes.");
    } else {
      const memo = "gateway-log-key:" + config.origin;
      const seen = window.localStorage.getItem(memo);
      if (seen && seen !== vkeyText) {
        step("Warning: this node's log key changed since this browser last saw it.", "warn");
      } else {
        window.localStorage.setItem(memo, vkeyText);
        step("Log key " + logKey.name + " (id " + computed + "); no manifest to compare it with.", "warn");
      }
    }
    return logKey;
  }

  async function checkWitnesses(logKey, checkpoint) {
    if (!witnessList) return;
    witnessList.textContent = "";
    const add = (text, state) => {
      const item = document.createElement("li");
      item.className = "step " + state;
      item.textContent = text;
      witnessList.appendChild(item);
    };
    const candidates = (config.witness_keys || []).map((k) => ({ force: k.force, key: b64urlDecode(k.x) }));
    const notes = [{ source: "latest", raw: checkpoint.raw }];
    try {
      const witnessed = await fetchJson("/console/api/witnessed");
      for (const item of witnessed.checkpoints) notes.push({ source: item.force, raw: item.note });
    } catch (error) {
      add("Could not load cosigned checkpoints: " + error.message, "warn");
    }
    let shown = 0;
    for (const entry of notes) {
      const note = parseNote(entry.raw);
      for (const sig of note.signatures) {
        if (sig.name === logKey.name) continue;
        shown++;
        const time = sig.signature.length === 72 ? Number(new DataView(sig.signature.buffer, sig.signature.byteOffset, 8).getBigUint64(0)) : null;
        const when = time ? new Date(time * 1000).toISOString().replace(".000", "") : "unknown time";
        let who = null;
        let verdict = "signature not checked (witness key unknown)";
        let state = "warn";
        for (const candidate of candidates) {
          if (!equal(await keyId(sig.name, 4, candidate.key), sig.keyId) || time === null) continue;
          who = candidate.force;
          const message = concat(encoder.encode("cosignature/v1\ntime " + time + "\n"), encoder.encode(note.text));
          const valid = await ed25519Verify(candidate.key, sig.signature.slice(8), message);
          verdict = valid === null ? "Ed25519 unsupported here" : valid ? "cosignature verified" : "COSIGNATURE INVALID";
          state = valid ? "ok" : valid === null ? "warn" : "bad";
          if (valid && config.index !== null && config.index < note.size) {
            const included = await verifyInclusion(config.index, note, logKey);
            verdict += included ? "; this entry is inside the witnessed tree" : "; entry NOT in witnessed tree";
            if (!included) state = "bad";
          }
          break;
        }
        add("Witness " + (who ? "force " + who : sig.name) + " cosigned size " + note.size + " at " + when + ": " + verdict, state);
      }
    }
    if (shown === 0) add("No partner has cosigned this log's checkpoints yet.", "warn");
  }

  let entryBytes = null;

  async function verifyInclusion(index, note, logKey) {
    if ((await checkLogSignature(note, logKey)) === "unsupported") return false;
    const proof = await fetchJson("/v1/audit/proof/inclusion?index=" + index + "&size=" + note.size);
    const leaf = await leafHash(entryBytes);
    const root = await rootFromInclusion(index, note.size, leaf, proof.proof.map(fromHex));
    return equal(root, note.root);
  }

  async function verifyEntry() {
    const index = config.index;
    // 1. Hash the entry bytes as the log stores them.
    const body = await fetchJson("/console/api/entries/" + index + "/bytes");
    entryBytes = b64decode(body.entry);
    const leaf = await leafHash(entryBytes);
    step("Hashed the entry's " + entryBytes.length + " bytes: leaf " + hex(leaf).slice(0, 16) + "…");
    // 2. Fetch a checkpoint that covers it, and the log key.
    const checkpoint = await fetchCheckpoint(index + 1);
    const logKey = await checkLogKey(checkpoint.vkey);
    // 3. Check the checkpoint's signature.
    const signature = await checkLogSignature(checkpoint.note, logKey);
    if (signature === "ok") step("Checkpoint of size " + checkpoint.note.size + " is signed by the log key (Ed25519).");
    else step("This browser cannot check Ed25519 signatures; the checkpoint signature was not checked.", "warn");
    // 4. Recompute the root from the inclusion proof and compare it with the signed root.
    const proof = await fetchJson("/v1/audit/proof/inclusion?index=" + index + "&size=" + checkpoint.note.size);
    if (proof.leaf_hash !== hex(leaf)) step("The server now reports a different leaf hash for this entry.", "bad");
    const root = await rootFromInclusion(index, checkpoint.note.size, leaf, proof.proof.map(fromHex));
    if (!equal(root, checkpoint.note.root)) {
      step("The root recomputed from this entry (" + hex(root).slice(0, 16) + "…) is not the signed root (" + hex(checkpoint.note.root).slice(0, 16) + "…).", "bad");
      setBadge("failed", "Verification FAILED: this entry is not the one the log signed");
    } else {
      step("Root recomputed from the entry and " + proof.proof.length + " proof hashes equals the signed root.");
      if (signature === "ok") setBadge("verified", "Verified: this entry is in the signed log");
      else setBadge("partial", "Included in the log (signature not checked by this browser)");
    }
    await checkWitnesses(logKey, checkpoint);
  }

  async function verifyCheckpointOnly() {
    const checkpoint = await fetchCheckpoint(0);
    const logKey = await checkLogKey(checkpoint.vkey);
    const signature = await checkLogSignature(checkpoint.note, logKey);
    if (signature === "ok") {
      step("Checkpoint of size " + checkpoint.note.size + " is signed by the log key (Ed25519).");
      setBadge("verified", "Verified: the latest checkpoint is signed by this log's key");
    } else {
      setBadge("partial", "This browser cannot check Ed25519 signatures");
    }
    await checkWitnesses(logKey, checkpoint);
  }

  const run = config.index === null ? verifyCheckpointOnly : verifyEntry;
  run().catch((error) => {
    step(error.message, "bad");
    setBadge("failed", "Verification FAILED: " + error.message);
  });
})();
