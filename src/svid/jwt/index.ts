/** JWT-SVIDs: parse and validate against JWT bundles (JWT-SVID spec §2–4). */
export { DEFAULT_JWT_CLOCK_SKEW_SECONDS, JWT_SVID_ALGORITHMS, JWT_SVID_RULES, type JwtSvidAlgorithm, type JwtSvidRule } from './rules.js';
export { JwtSvid, type JwtSvidHeader, type ValidateJwtSvidOptions, parseAndValidateJwtSvid, parseInsecureJwtSvid } from './svid.js';
