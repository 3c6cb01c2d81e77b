// A Workload API client run as a separate process (possibly under another uid) by grpc.test.ts.
// Usage: node grpc_client.mjs <socket> <workload.proto> <calls>
// Waits for a line on stdin ("go"), then makes <calls> concurrent FetchJWTSVID calls and reads the
// first FetchX509SVID message, all over one connection, and prints one JSON line:
// {"pid":…, "uid":…, "jwt":[spiffe ids seen], "x509":[spiffe ids], "errors":[…]}.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import process from 'node:process';

const [socket, protoPath, callsArg] = process.argv.slice(2);
const calls = Number(callsArg ?? '1');
const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const Client = grpc.makeGenericClientConstructor(def.SpiffeWorkloadAPI, 'SpiffeWorkloadAPI');
const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.set('workload.spiffe.io', 'true');
const deadline = () => new Date(Date.now() + 10_000);
const errors = [];

function jwt() {
  return new Promise((resolve) => {
    client.FetchJWTSVID({ audience: ['cross-talk'] }, md, { deadline: deadline() }, (err, res) => {
      if (err) {
        errors.push({ call: 'jwt', code: err.code, details: err.details });
        resolve([]);
      } else resolve(res.svids.map((s) => s.spiffe_id));
    });
  });
}

function x509() {
  return new Promise((resolve) => {
    const stream = client.FetchX509SVID({}, md, { deadline: deadline() });
    stream.on('data', (msg) => {
      resolve(msg.svids.map((s) => s.spiffe_id));
      stream.cancel();
    });
    stream.on('error', (err) => {
      if (err.code !== grpc.status.CANCELLED) errors.push({ call: 'x509', code: err.code, details: err.details });
      resolve([]);
    });
  });
}

process.stdin.once('data', async () => {
  const results = await Promise.all([x509(), ...Array.from({ length: calls }, jwt)]);
  const [x, ...j] = results;
  const ids = [...new Set(j.flat())].sort();
  process.stdout.write(`${JSON.stringify({ pid: process.pid, uid: process.getuid(), jwt: ids, x509: [...x].sort(), errors })}\n`);
  client.close();
  process.exit(0);
});
process.stdout.write('ready\n');
