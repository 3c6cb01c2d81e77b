import { expect } from 'chai';
import { ERROR_TABLE, GrpcStatus, WritError, grpcStatusOf, httpStatusOf, isErrorCode, toWritError } from '../src/errors.js';

describe('errors', () => {
  it('maps every code to one gRPC status and one HTTP status', () => {
    const grpc = new Set<number>(Object.values(GrpcStatus));
    for (const code of Object.keys(ERROR_TABLE)) {
      expect(code).to.match(/^ERR_[A-Z0-9_]+$/);
      expect(isErrorCode(code)).to.equal(true);
      expect(grpc.has(grpcStatusOf(code as keyof typeof ERROR_TABLE))).to.equal(true);
      const http = httpStatusOf(code as keyof typeof ERROR_TABLE);
      expect(http).to.be.within(400, 599);
    }
  });
  it('carries code, sentence and details to JSON; wraps unknown errors as ERR_INTERNAL without their text', () => {
    const e = new WritError('ERR_ENTRY_EXISTS', 'An entry like this exists.', { details: { index: 2 } });
    expect(e.toJSON()).to.deep.equal({ code: 'ERR_ENTRY_EXISTS', message: 'An entry like this exists.', details: { index: 2 } });
    expect(e.grpcStatus).to.equal(GrpcStatus.ALREADY_EXISTS);
    expect(e.httpStatus).to.equal(409);
    const wrapped = toWritError(new Error('secret key material here'));
    expect(wrapped.code).to.equal('ERR_INTERNAL');
    expect(wrapped.message).to.not.contain('secret');
    expect(isErrorCode('ERR_NOPE')).to.equal(false);
  });
});
