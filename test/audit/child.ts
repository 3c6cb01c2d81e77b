/**
 * A second process for the audit tests (run with `node --import tsx`):
 *   try <log>    try to open the log; print {"opened":true} or {"code":...}, exit
 *   hold <log>   open the log, print "ready", close when stdin ends
 *   spam <log>   open the log and append 16 at a time until killed, printing "ack <seq>" per resolved append
 */
import { AuditLog } from '../../src/audit/index.js';
import { isWritError } from '../../src/errors.js';

const [mode, path] = process.argv.slice(2) as [string, string];

if (mode === 'try') {
  try {
    const log = await AuditLog.open(path);
    await log.close();
    console.log(JSON.stringify({ opened: true }));
  } catch (e) {
    console.log(JSON.stringify({ code: isWritError(e) ? e.code : String(e) }));
  }
} else if (mode === 'hold') {
  const log = await AuditLog.open(path);
  console.log('ready');
  process.stdin.resume();
  process.stdin.on('end', () => void log.close().then(() => process.exit(0)));
} else if (mode === 'spam') {
  const log = await AuditLog.open(path);
  const pad = 'x'.repeat(2000); // long lines make a kill mid-write likely
  const one = async (): Promise<void> => {
    for (;;) {
      const r = await log.append({ kind: 'test.spam', details: { pad } });
      process.stdout.write(`ack ${r.seq}\n`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, one));
}
