export { AdminClient, MAX_RESPONSE_BYTES } from './client.js';
