// The parts of matrix-js-sdk the portal's messages page uses, as one global `matrixcs`
// (scripts/vendor_matrix_sdk.sh bundles this with esbuild).
export {
  createClient,
  ClientEvent,
  RoomEvent,
  RoomMemberEvent,
  EventType,
  MsgType,
  Preset,
  KnownMembership,
  MemoryStore,
} from "matrix-js-sdk";
