/**
 * A gRPC stack that is not grpc-js, for tests: Python stubs generated from proto/workload.proto by
 * Debian's protoc with grpc_python_plugin (or grpc_tools), run by Debian's /usr/bin/python3 with
 * python3-grpcio. Callers mark their test pending with the returned reason when tools are missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { workloadProtoPath } from '../../src/workloadapi/proto.js';

export const PYTHON = '/usr/bin/python3';
const PROTOC = '/usr/bin/protoc';
const PLUGIN = '/usr/bin/grpc_python_plugin';
export const INSTALL = 'apt-get install -y protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf';
export const PYTHON_CLIENT = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent', 'workload', 'python_client.py');

const pyHas = (mod: string): boolean => existsSync(PYTHON) && spawnSync(PYTHON, ['-c', `import ${mod}`], { timeout: 20_000 }).status === 0;

/** Generates workload_pb2.py and workload_pb2_grpc.py into `out`; a reason string when it cannot. */
export function generatePythonStubs(out: string): string | undefined {
  if (!pyHas('grpc') || !pyHas('google.protobuf')) return `the Python grpc and protobuf modules are missing (${INSTALL})`;
  const proto = workloadProtoPath();
  const includes = ['-I', dirname(proto), '-I', '/usr/include'];
  let r;
  if (existsSync(PROTOC) && existsSync(PLUGIN)) {
    r = spawnSync(PROTOC, [...includes, `--plugin=protoc-gen-grpc_python=${PLUGIN}`, `--python_out=${out}`, `--grpc_python_out=${out}`, proto], { encoding: 'utf8', timeout: 30_000 });
  } else if (pyHas('grpc_tools.protoc')) {
    r = spawnSync(PYTHON, ['-m', 'grpc_tools.protoc', ...includes, `--python_out=${out}`, `--grpc_python_out=${out}`, proto], { encoding: 'utf8', timeout: 30_000 });
  } else {
    return `${PROTOC} or ${PLUGIN} is missing (${INSTALL})`;
  }
  if (r.status !== 0) throw new Error(`protoc failed: ${r.stderr}`);
  return undefined;
}

