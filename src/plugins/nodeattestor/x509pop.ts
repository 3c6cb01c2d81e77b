/**
 * The x509pop node attestor: the agent proves it holds the private key of a certificate issued
 * (directly or through intermediates) by a CA the server is configured to trust. The agent sends
 * its chain, the server checks the path at the injected clock's time, sends a fresh nonce, and
 * checks the agent's signature over it with the leaf's key. The nonce lives only inside one
 * attest() call, so a response to another session's nonce, or a replayed one, fails.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { decodePem } from '../../bundle/index.js';
import { cryptoRandom } from '../../clock.js';
import { WritError } from '../../errors.js';
import { validatePath } from '../../spiffeid/index.js';
import { NODE_ATTESTOR, type PluginDeps, declarePlugin, keepValidSelectors } from '../contract.js';
import { type AgentNodeAttestor, type NodeAttestationResult, type ServerNodeAttestor, attestationError, checkAgentPath, expectObject } from './types.js';
import { type ParsedCert, type VerifiedPath, commonNames, parseCaBundle, parseCert, pathSelectors, serialHex, verifyChain } from './x509pop-chain.js';
import { NONCE_BYTES, type X509PopChallenge, type X509PopResponse, isBase64, parseX509PopChallenge, parseX509PopResponse, signChallenge, signParams, verifyChallenge } from './x509pop-pop.js';

export const X509POP = 'x509pop';
/** At most this many certificates (leaf and intermediates, optionally the root). */
export const MAX_CHAIN_LENGTH = 8;
/** Base64 length limit of one certificate (about 16 KiB of DER). */
const MAX_CERT_B64 = 21848;
export const DEFAULT_AGENT_PATH_TEMPLATE = '{{ .PluginName }}/{{ .Fingerprint }}';

export interface X509PopPayload {
  certificates: string[];
}

/** Server side: checks the payload's shape and parses its certificates (leaf first). */
export function parseX509PopPayload(payload: unknown): ParsedCert[] {
  const o = expectObject(X509POP, 'payload', payload, ['certificates']);
  const list = o.certificates;
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_CHAIN_LENGTH) {
    throw attestationError(X509POP, `The x509pop payload is malformed: "certificates" must be a list of 1 to ${MAX_CHAIN_LENGTH} certificates.`);
  }
  return list.map((b64: unknown, i) => {
    if (typeof b64 !== 'string' || b64.length === 0 || b64.length > MAX_CERT_B64 || !isBase64(b64)) {
      throw attestationError(X509POP, `The x509pop payload is malformed: certificate ${i + 1} is not base64 DER.`);
    }
    const cert = parseCert(Buffer.from(b64, 'base64'));
    if (!cert) throw attestationError(X509POP, `The x509pop payload is malformed: certificate ${i + 1} is not a valid X.509 certificate.`);
    return cert;
  });
}

// ---- agent path template: a small subset of SPIRE's Go text/template syntax ----

type TemplateValues = Record<string, () => string | undefined>;
const FIELD = /\{\{\s*\.([A-Za-z][A-Za-z.]*)\s*\}\}/g;
const TEMPLATE_FIELDS = ['PluginName', 'Fingerprint', 'TrustDomain', 'Subject.CommonName', 'SerialNumberHex'];

/** Checks a template at config time: known fields only, and a valid path for plausible values. */
function checkTemplate(t: string): string | undefined {
  const rest = t.replace(FIELD, '');
  if (rest.includes('{{') || rest.includes('}}')) return 'it has a "{{" or "}}" that is not a {{ .Field }} reference';
  for (const m of t.matchAll(FIELD)) {
    if (!TEMPLATE_FIELDS.includes(m[1]!)) return `it references ".${m[1]}"; the fields are ${TEMPLATE_FIELDS.map((f) => `.${f}`).join(', ')}`;
  }
  try {
    validatePath(`/${t.replace(/^\//, '').replace(FIELD, 'x')}`);
  } catch {
    return 'it does not make a valid SPIFFE ID path';
  }
  return undefined;
}

function renderTemplate(t: string, values: TemplateValues): string {
  return t.replace(/^\//, '').replace(FIELD, (_m, field: string) => {
    const v = values[field]?.();
    if (v === undefined) throw attestationError(X509POP, `The x509pop attestation failed: the certificate has no value for ".${field}" in agent_path_template.`);
    return v;
  });
}

// ---- server ----

const serverConfig = z
  .object({
    ca_bundle_path: z.string().min(1),
    agent_path_template: z
      .string()
      .min(1)
      .default(DEFAULT_AGENT_PATH_TEMPLATE)
      .superRefine((t, ctx) => {
        const why = checkTemplate(t);
        if (why) ctx.addIssue({ code: z.ZodIssueCode.custom, message: why });
      }),
  })
  .strict();

class X509PopServer implements ServerNodeAttestor {
  readonly name = X509POP;

  constructor(
    private readonly roots: ParsedCert[],
    private readonly template: string,
    private readonly deps: PluginDeps,
  ) {}

  async attest(payload: unknown, challenge: (data: unknown) => Promise<unknown>): Promise<NodeAttestationResult> {
    const path = verifyChain(parseX509PopPayload(payload), this.roots, this.deps.clock.now());
    const nonce = (this.deps.random ?? cryptoRandom).bytes(NONCE_BYTES).toString('base64');
    let answer: unknown;
    try {
      answer = await challenge({ nonce } satisfies X509PopChallenge);
    } catch (e) {
      throw attestationError(X509POP, 'The x509pop attestation failed: the agent did not answer the challenge.', e);
    }
    const { signature } = parseX509PopResponse(answer);
    if (!verifyChallenge(path.leaf.node.publicKey, nonce, signature)) {
      throw attestationError(X509POP, "The x509pop attestation failed: the challenge signature does not verify with the leaf certificate's key.");
    }
    const agentPath = checkAgentPath(X509POP, renderTemplate(this.template, this.values(path)));
    this.deps.logger.info({ fingerprint: path.leaf.sha1, agent_path: agentPath }, 'x509pop attestation succeeded');
    return { agentPath, selectors: keepValidSelectors(pathSelectors(path), this.deps.logger), canReattest: true };
  }

  private values(path: VerifiedPath): TemplateValues {
    return {
      PluginName: () => X509POP,
      Fingerprint: () => path.leaf.sha1,
      TrustDomain: () => this.deps.trustDomain,
      'Subject.CommonName': () => commonNames(path.leaf)[0],
      SerialNumberHex: () => serialHex(path.leaf),
    };
  }
}

async function readConfigFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new WritError('ERR_PLUGIN_CONFIG', `The x509pop ${what} "${path}" can not be read.`, { cause: e });
  }
}

export const x509PopServerPlugin = declarePlugin({
  type: NODE_ATTESTOR,
  name: X509POP,
  description: 'Attests an agent by proof of possession of a certificate issued by a configured CA.',
  configSchema: serverConfig,
  async create(config: z.infer<typeof serverConfig>, deps: PluginDeps): Promise<ServerNodeAttestor> {
    const roots = parseCaBundle(await readConfigFile(config.ca_bundle_path, 'CA bundle'), config.ca_bundle_path);
    return new X509PopServer(roots, config.agent_path_template, deps);
  },
});

// ---- agent ----

const agentConfig = z.object({ certificate_path: z.string().min(1), private_key_path: z.string().min(1) }).strict();

class X509PopAgent implements AgentNodeAttestor {
  readonly name = X509POP;

  constructor(
    private readonly chain: Buffer[],
    private readonly key: KeyObject,
  ) {}

  async payload(): Promise<X509PopPayload> {
    return { certificates: this.chain.map((d) => d.toString('base64')) };
  }

  async respond(challenge: unknown): Promise<X509PopResponse> {
    return signChallenge(this.key, parseX509PopChallenge(challenge).nonce);
  }
}

function spkiOf(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

export const x509PopAgentPlugin = declarePlugin({
  type: NODE_ATTESTOR,
  name: X509POP,
  description: 'Presents a certificate chain and proves possession of the leaf key.',
  configSchema: agentConfig,
  async create(config: z.infer<typeof agentConfig>): Promise<AgentNodeAttestor> {
    const certPem = await readConfigFile(config.certificate_path, 'certificate file');
    const blocks = decodePem(certPem, 'ERR_PLUGIN_CONFIG', `the x509pop certificate file "${config.certificate_path}"`, 'CERTIFICATE');
    const chain = blocks.map((b) => b.der);
    const leaf = chain[0] ? parseCert(chain[0]) : undefined;
    if (!leaf) throw new WritError('ERR_PLUGIN_CONFIG', `The x509pop certificate file "${config.certificate_path}" does not start with a valid certificate.`);
    if (chain.length > MAX_CHAIN_LENGTH) throw new WritError('ERR_PLUGIN_CONFIG', `The x509pop certificate file holds more than ${MAX_CHAIN_LENGTH} certificates.`);
    let key: KeyObject;
    try {
      key = createPrivateKey(await readConfigFile(config.private_key_path, 'private key file'));
    } catch (e) {
      if (e instanceof WritError) throw e;
      throw new WritError('ERR_PLUGIN_CONFIG', `The x509pop private key file "${config.private_key_path}" does not hold a readable private key.`, { cause: e });
    }
    if (!signParams(key)) throw new WritError('ERR_PLUGIN_CONFIG', 'The x509pop private key is not ECDSA (P-256, P-384, P-521), RSA, Ed25519 or Ed448.');
    if (!spkiOf(createPublicKey(key)).equals(spkiOf(leaf.node.publicKey))) {
      throw new WritError('ERR_PLUGIN_CONFIG', 'The x509pop private key does not belong to the first certificate of the certificate file.');
    }
    return new X509PopAgent(chain, key);
  },
});
