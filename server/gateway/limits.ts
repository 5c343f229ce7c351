/**
 * What one request may ask of the server. Pure constants: the browser's
 * tRPC client imports the batch cap so it never sends a batch the server
 * refuses.
 */

/** Calls in one tRPC HTTP batch (tRPC's `maxBatchSize`); more get 400. */
export const MAX_BATCH_CALLS = 16;

/** Bytes in one HTTP request body; more get 413 while streaming, before buffering. Inputs are small JSON. */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Calls in one tRPC WebSocket message (the adapter has no batch cap of its
 * own). Larger than MAX_BATCH_CALLS: the browser's wsLink sends every
 * subscription a page opens in one tick as one message.
 */
export const MAX_WS_MESSAGE_CALLS = 64;
