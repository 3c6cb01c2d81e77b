/**
 * `writ x509 mint` and `writ jwt mint`: SVIDs minted directly by the server's CA for an SRE, as
 * `spire-server x509 mint` does; `writ svid revoke` puts issued X509-SVIDs on the CRL. The key is generated here and never leaves this process; the
 * server sees only a CSR, and takes nothing from it but the public key.
 */
import 'reflect-metadata';
import { Crypto } from '@peculiar/webcrypto';
import * as x509 from '@peculiar/x509';
import type { Command } from 'commander';
import type { webcrypto as nodeWebcrypto } from 'node:crypto';
import { join } from 'node:path';
import { WritError } from '../errors.js';
import { toPem, writeFilesAtomically } from './io.js';
import { collect, type CliContext } from './context.js';

const webcrypto = new Crypto();

/** A fresh P-256 key and a CSR carrying its public key. */
export async function newKeyAndCsr(): Promise<{ keyPem: string; csrDer: Buffer }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as nodeWebcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg }, webcrypto);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keyPem: toPem('PRIVATE KEY', pkcs8), csrDer: Buffer.from(csr.rawData) };
}

interface X509MintResult {
  spiffe_id: string;
  chain: string[];
  bundle: string[];
  serial: string;
  expires_at: number;
}

export function registerSvidCommands(program: Command, ctx: CliContext): void {
  ctx
    .common(
      program
        .command('x509')
        .description('X509-SVIDs')
        .command('mint')
        .description('mint an X509-SVID (key generated locally) and print it or --write it')
        .requiredOption('--spiffe-id <id>', 'SPIFFE ID of the SVID')
        .option('--dns <name>', 'DNS name SAN (repeat)', collect, [])
        .option('--ttl <duration>', 'lifetime, e.g. 5m (default: the server\'s X509-SVID TTL)')
        .option('--write <dir>', 'write svid.pem, key.pem (0600) and bundle.pem into this directory'),
    )
    .action(async (f: { spiffeId: string; dns: string[]; ttl?: string; write?: string }) => {
      const { keyPem, csrDer } = await newKeyAndCsr();
      const res = await ctx.client().post<X509MintResult>('/v1/svid/x509', {
        spiffe_id: f.spiffeId,
        csr: csrDer.toString('base64'),
        ...(f.ttl !== undefined ? { ttl: f.ttl } : {}),
        ...(f.dns.length ? { dns_names: f.dns } : {}),
      });
      const svidPem = res.chain.map((c) => toPem('CERTIFICATE', Buffer.from(c, 'base64'))).join('');
      const bundlePem = res.bundle.map((c) => toPem('CERTIFICATE', Buffer.from(c, 'base64'))).join('');
      const expires = new Date(res.expires_at * 1000).toISOString();
      if (f.write !== undefined) {
        const files = { svid: join(f.write, 'svid.pem'), key: join(f.write, 'key.pem'), bundle: join(f.write, 'bundle.pem') };
        writeFilesAtomically([
          { path: files.svid, data: svidPem, mode: 0o644 },
          { path: files.key, data: keyPem, mode: 0o600 },
          { path: files.bundle, data: bundlePem, mode: 0o644 },
        ]);
        if (ctx.json()) ctx.io.out(JSON.stringify({ spiffe_id: res.spiffe_id, serial: res.serial, expires_at: res.expires_at, files }, null, 2));
        else ctx.io.out(`X509-SVID for ${res.spiffe_id} (serial ${res.serial}, expires ${expires}) written to ${files.svid}, ${files.key} and ${files.bundle}\n`);
        return;
      }
      if (ctx.json()) {
        ctx.io.out(JSON.stringify({ spiffe_id: res.spiffe_id, serial: res.serial, expires_at: res.expires_at, svid_pem: svidPem, key_pem: keyPem, bundle_pem: bundlePem }, null, 2));
      } else {
        ctx.io.out(`X509-SVID (${res.spiffe_id}, expires ${expires}):\n${svidPem}\nPrivate key:\n${keyPem}\nRoot CAs:\n${bundlePem}`);
      }
    });

  ctx
    .common(
      program
        .command('svid')
        .description('X509-SVIDs the server issued')
        .command('revoke')
        .description('put unexpired X509-SVIDs on the CRL: one --serial, or all of an --entry-id or --spiffe-id')
        .option('--serial <hex>', 'serial number in hex (as openssl x509 -serial prints it; colons allowed)')
        .option('--entry-id <id>', 'every unexpired SVID issued for this registration entry')
        .option('--spiffe-id <id>', 'every unexpired SVID issued with this SPIFFE ID')
        .option('--reason <text>', 'recorded with the revocation'),
    )
    .action(async (f: { serial?: string; entryId?: string; spiffeId?: string; reason?: string }) => {
      const res = await ctx.client().post<{ revoked: Array<{ serial: string; spiffe_id: string; expires_at: number }> }>('/v1/svid/revoke', {
        ...(f.serial !== undefined ? { serial: f.serial } : {}),
        ...(f.entryId !== undefined ? { entry_id: f.entryId } : {}),
        ...(f.spiffeId !== undefined ? { spiffe_id: f.spiffeId } : {}),
        ...(f.reason !== undefined ? { reason: f.reason } : {}),
      });
      if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
      else for (const r of res.revoked) ctx.io.out(`revoked ${r.serial} (${r.spiffe_id}, expires ${new Date(r.expires_at * 1000).toISOString()})\n`);
    });

  ctx
    .common(
      program
        .command('jwt')
        .description('JWT-SVIDs')
        .command('mint')
        .description('mint a JWT-SVID and print it or --write it')
        .requiredOption('--spiffe-id <id>', 'SPIFFE ID (the sub claim)')
        .option('--audience <aud>', 'audience (repeat; at least one)', collect, [])
        .option('--ttl <duration>', 'lifetime, e.g. 5m (default: the server\'s JWT-SVID TTL)')
        .option('--write <file>', 'write the token to this file (0600)'),
    )
    .action(async (f: { spiffeId: string; audience: string[]; ttl?: string; write?: string }) => {
      if (f.audience.length === 0) throw new WritError('ERR_INPUT_INVALID', 'jwt mint needs at least one --audience.');
      const res = await ctx.client().post<{ spiffe_id: string; token: string; expires_at: number }>('/v1/svid/jwt', {
        spiffe_id: f.spiffeId,
        audience: f.audience,
        ...(f.ttl !== undefined ? { ttl: f.ttl } : {}),
      });
      if (f.write !== undefined) {
        writeFilesAtomically([{ path: f.write, data: `${res.token}\n`, mode: 0o600 }]);
        ctx.io.out(ctx.json() ? JSON.stringify({ spiffe_id: res.spiffe_id, expires_at: res.expires_at, file: f.write }) : `JWT-SVID written to ${f.write}\n`);
        return;
      }
      ctx.io.out(ctx.json() ? JSON.stringify(res, null, 2) : `${res.token}\n`);
    });
}
