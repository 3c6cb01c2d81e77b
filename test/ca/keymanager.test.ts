/** Key managers: memory and disk (PKCS#8 files, 0600, atomic writes, refused when readable by others). */
import { expect } from 'chai';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, verify } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskKeyManager, MemoryKeyManager, type KeyManager } from '../../src/ca/index.js';

const rejects = async (p: Promise<unknown>): Promise<{ code?: string; message?: string } | undefined> =>
  p.then(
    () => undefined,
    (e: { code?: string; message?: string }) => e,
  );

async function signsAndVerifies(km: KeyManager, id: string): Promise<void> {
  const key = (await km.getKey(id))!;
  const data = Buffer.from('to be signed');
  expect(verify('sha256', data, key.publicKey, await key.sign(data))).to.equal(true);
  expect(verify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, await key.sign(data, 'ieee-p1363'))).to.equal(true);
  const pair = await key.cryptoKeyPair();
  const sig = Buffer.from(await km.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, data));
  expect(verify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sig)).to.equal(true);
}

describe('ca/keymanager memory', () => {
  it('generates, signs, replaces and deletes keys', async () => {
    const km = new MemoryKeyManager();
    const a = await km.generateKey('x509-root-A', 'ec-p256');
    await signsAndVerifies(km, 'x509-root-A');
    const b = await km.generateKey('x509-root-A', 'ec-p256');
    expect(b.publicKeyDer.equals(a.publicKeyDer)).to.equal(false);
    expect((await km.getKey('x509-root-A'))!.publicKeyDer.equals(b.publicKeyDer)).to.equal(true);
    await km.deleteKey('x509-root-A');
    expect(await km.getKey('x509-root-A')).to.equal(undefined);
  });

  it('refuses key ids that could escape a directory, and unknown key types', async () => {
    const km = new MemoryKeyManager();
    expect((await rejects(km.generateKey('../etc/passwd', 'ec-p256')))?.code).to.equal('ERR_INPUT_INVALID');
    expect((await rejects(km.generateKey('ok', 'rsa-512' as never)))?.code).to.equal('ERR_CA_KEY_TYPE');
  });
});

describe('ca/keymanager disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-keys-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one PKCS#8 PEM file per key, 0600, in a 0700 directory, and leaves no temporary files', async () => {
    const keys = join(dir, 'keys');
    const km = new DiskKeyManager({ directory: keys });
    await km.generateKey('jwt-A', 'ec-p256');
    expect(statSync(keys).mode & 0o777).to.equal(0o700);
    expect(readdirSync(keys)).to.deep.equal(['jwt-A.key.pem']);
    expect(statSync(join(keys, 'jwt-A.key.pem')).mode & 0o777).to.equal(0o600);
    expect(readFileSync(join(keys, 'jwt-A.key.pem'), 'utf8')).to.match(/^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/);
  });

  it('reads the same key back in a new process-level instance', async () => {
    const a = await new DiskKeyManager({ directory: dir }).generateKey('x509-signing-B', 'ec-p256');
    const again = new DiskKeyManager({ directory: dir });
    const b = (await again.getKey('x509-signing-B'))!;
    expect(b.publicKeyDer.equals(a.publicKeyDer)).to.equal(true);
    await signsAndVerifies(again, 'x509-signing-B');
    expect(await again.getKey('missing')).to.equal(undefined);
    await again.deleteKey('x509-signing-B');
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('refuses a key file that other users can read', async () => {
    await new DiskKeyManager({ directory: dir }).generateKey('k', 'ec-p256');
    chmodSync(join(dir, 'k.key.pem'), 0o644);
    const e = await rejects(new DiskKeyManager({ directory: dir }).getKey('k'));
    expect(e?.code).to.equal('ERR_KEYMANAGER_IO');
    expect(e?.message).to.match(/mode 644.*0600/);
  });

  it('refuses a corrupt or foreign key file without echoing its content', async () => {
    writeFileSync(join(dir, 'bad.key.pem'), 'SECRET-MATERIAL not a pem', { mode: 0o600 });
    const e1 = await rejects(new DiskKeyManager({ directory: dir }).getKey('bad'));
    expect(e1?.code).to.equal('ERR_KEYMANAGER_IO');
    expect(e1?.message).to.not.contain('SECRET-MATERIAL');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    writeFileSync(join(dir, 'rsa.key.pem'), rsa, { mode: 0o600 });
    expect((await rejects(new DiskKeyManager({ directory: dir }).getKey('rsa')))?.code).to.equal('ERR_CA_KEY_TYPE');
  });

  it('on a failed write keeps the old state and removes its temporary file', async () => {
    const km = new DiskKeyManager({ directory: dir });
    mkdirSync(join(dir, 'blocked.key.pem'));
    const e = await rejects(km.generateKey('blocked', 'ec-p256'));
    expect(e?.code).to.equal('ERR_KEYMANAGER_IO');
    expect(readdirSync(dir)).to.deep.equal(['blocked.key.pem']);
    expect(statSync(join(dir, 'blocked.key.pem')).isDirectory()).to.equal(true);
  });
});
