export { peerCredOf, peerGroupsOf, peerPidfdOf, closePidfd, pidfdAlive, pidfdOpen, socketFd } from './peercred.js';
export type { PeerCred } from './peercred.js';
export { lookupUserName, lookupGroupName, lookupGroupId, namesStamp } from './users.js';
export { parseStartTime, readStartTime } from './procstat.js';
export { openProcFile, readProcFd, readProcFdLines, closeProcFile } from './procfd.js';
