// The parts of matrix-js-sdk the portal's messages page uses, as one global `matrixcs`
// (scripts/vendor_matrix_sdk.sh bundles this with esbuild), with the Rust crypto's loader and
// Matrix's encrypted attachments (AES-CTR-256 with WebCrypto, the library Element uses).
export {
  createClient,
  ClientEvent,
  RoomEvent,
  MatrixEventEvent,
  RoomMemberEvent,
  EventType,
  MsgType,
  Preset,
  KnownMembership,
  MemoryStore,
} from "matrix-js-sdk";
// matrix-js-sdk's initRustCrypto() loads the WebAssembly from a URL beside the module, which a
// bundle does not have: the page calls initAsync with the vendored .wasm's own URL first (the
// loader loads once, so matrix-js-sdk's later call finds it loaded).
export { initAsync as initCryptoWasm } from "@matrix-org/matrix-sdk-crypto-wasm";
// The Rust crypto's key backup waits up to `maxBackupLoopStartDelayMillis` (10 s) before it
// uploads new room keys: the page shortens the wait (a key read just before logging out of the
// portal would otherwise be lost to the next login's device).
export { RustBackupManager } from "matrix-js-sdk/lib/rust-crypto/backup.js";
export { encryptAttachment, decryptAttachment } from "matrix-encrypt-attachment";
