/** The node API: what agents call on the server (attestation, renewal, entry sync, signing). */
export { AGENT_ID_PREFIX, authenticateAgent, authorizedEntries, scopeOf, serverId, type AgentScope } from './agents.js';
export { AttestationSessions, MAX_SESSIONS, type AttestStep } from './attest.js';
export { createNodeApp, MAX_NODE_BODY } from './app.js';
export { issueAgentSvid, issueJwtSvid, issueX509Svids, MAX_SVID_BATCH, type SvidRequest, type SvidResult } from './issue.js';
export { startNodeApiListener } from './listen.js';
export { syncEntries, type SyncRequest, type SyncResponse } from './sync.js';
