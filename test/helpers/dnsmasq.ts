import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './cli.js';

/** A real dnsmasq answering on 127.0.0.1:port, with the records of its configuration only. */
export interface RunningDnsmasq {
  port: number;
  /** "127.0.0.1:port", as --nameserver takes it. */
  nameserver: string;
  /** What dnsmasq logged (queries included): shown when a test fails. */
  log(): string;
  stop(): Promise<void>;
}

const READY_NAME = 'ready.dnsmasq.test';

/**
 * Starts dnsmasq in the foreground with a configuration file in a temp folder: no upstream
 * servers, no /etc/hosts, listening on loopback only. `lines` are configuration lines
 * (`ptr-record=...`); `args` are extra command-line options, for values longer than a
 * configuration line may be (dnsmasq cuts lines at about 1 KiB). Waits until it answers.
 */
export async function startDnsmasq(lines: string[], args: string[] = []): Promise<RunningDnsmasq> {
  const binary = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((path) => existsSync(path));
  if (!binary) {
    throw new Error('dnsmasq is not installed: apt-get install dnsmasq-base (see .ci/run)');
  }
  const dir = tempDir('sark-fed-dnsmasq-');
  const conf = join(dir, 'dnsmasq.conf');
  writeFileSync(
    conf,
    [
      'no-resolv',
      'no-hosts',
      'no-poll',
      'log-queries',
      // The readiness probe's own record, in a domain of its own.
      `local=/dnsmasq.test/`,
      `host-record=${READY_NAME},127.0.0.1`,
      ...lines,
      '',
    ].join('\n'),
  );
  // A port taken between our probe and dnsmasq's bind makes dnsmasq exit at once: try again.
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freeUdpAndTcpPort();
    const child = spawn(
      binary,
      [
        `--conf-file=${conf}`,
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--keep-in-foreground',
        // As root dnsmasq would switch to "nobody" and lose the temp folder; as another user
        // it does not change user at all, so this is harmless there.
        '--user=root',
        '--pid-file=',
        '--log-facility=-',
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await exited;
        clearTimeout(timer);
      }
    };
    if (await answers(port, child)) {
      return { port, nameserver: `127.0.0.1:${port}`, log: () => output, stop };
    }
    await stop();
    lastError = output;
  }
  throw new Error(`dnsmasq did not start: ${lastError}`);
}

/** True once dnsmasq answers the readiness name (within 5 s), false if it exits first. */
async function answers(port: number, child: ChildProcess): Promise<boolean> {
  const resolver = new Resolver({ timeout: 100, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    try {
      await resolver.resolve4(READY_NAME);
      return true;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return false;
}

/** A loopback port free for both UDP and TCP just now (DNS listens on both). */
async function freeUdpAndTcpPort(): Promise<number> {
  for (;;) {
    const socket = createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve(socket.address().port));
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    socket.close();
    if (tcpFree) return port;
  }
}
