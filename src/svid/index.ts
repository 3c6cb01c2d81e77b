/** SVIDs: X509-SVIDs and JWT-SVIDs — parse, validate, verify against bundles. */
export * from './jwt/index.js';
export * from './x509/index.js';
