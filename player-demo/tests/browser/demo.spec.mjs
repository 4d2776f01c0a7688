#!/usr/bin/env node
// Browser test of the hivecast demo page (plain Node + playwright-core + Debian's chromium;
// never a downloaded browser).
//
//   node player-demo/tests/browser/demo.spec.mjs [options]
//
// Options (each also readable from the environment variable in brackets):
//   --url URL            use an already running demo page instead of starting one [DEMO_URL]
//   --demo-bin PATH      hivecast-demo binary to start [DEMO_BIN]
//                        (default: $CARGO_TARGET_DIR/debug/hivecast-demo, then target/debug/hivecast-demo)
//   --mode MODE          origin-direct (default) or p2p [DEMO_MODE]
//   --agents N           players/agents (default 4) [DEMO_AGENTS]
//   --format F           stream segment format: ts (default) or fmp4 [DEMO_FORMAT]
//   --expect-peers       require at least one agent with peer bytes > 0 [EXPECT_PEERS=1]
//   --min-advance SECS   each player's currentTime must advance this much (default 10)
//   --timeout SECS       overall limit for the playback checks (default 90)
//   --artifacts DIR      screenshot + snapshot output [ARTIFACTS_DIR]
//                        (default $CARGO_TARGET_DIR/artifacts, else <repo>/target/artifacts)
//   --chromium PATH      browser binary (default /usr/bin/chromium) [CHROMIUM]
//
// Checks: the page loads; every player's currentTime advances >= min-advance seconds; no
// fatal hls.js error; no uncaught page error; (with --expect-peers) some agent reports peer
// bytes > 0; the demo exits cleanly on SIGTERM. Prints "N passed, N failed" and exits 1 on
// any failure. The screenshot is saved as demo.png in the artifacts directory.

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');

function parseArgs(argv) {
  const o = {
    url: process.env.DEMO_URL || null,
    demoBin: process.env.DEMO_BIN || null,
    mode: process.env.DEMO_MODE || 'origin-direct',
    agents: Number(process.env.DEMO_AGENTS || 4),
    format: process.env.DEMO_FORMAT || 'ts',
    expectPeers: process.env.EXPECT_PEERS === '1',
    minAdvance: 10,
    timeout: 90,
    artifacts: process.env.ARTIFACTS_DIR
      || path.join(process.env.CARGO_TARGET_DIR || path.join(repo, 'target'), 'artifacts'),
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--url': o.url = next(); break;
      case '--demo-bin': o.demoBin = next(); break;
      case '--mode': o.mode = next(); break;
      case '--agents': o.agents = Number(next()); break;
      case '--format': o.format = next(); break;
      case '--expect-peers': o.expectPeers = true; break;
      case '--min-advance': o.minAdvance = Number(next()); break;
      case '--timeout': o.timeout = Number(next()); break;
      case '--artifacts': o.artifacts = next(); break;
      case '--chromium': o.chromium = next(); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  if (!['origin-direct', 'p2p'].includes(o.mode)) throw new Error(`--mode must be origin-direct or p2p`);
  if (!(o.agents >= 1)) throw new Error('--agents must be >= 1');
  if (!['ts', 'fmp4'].includes(o.format)) throw new Error('--format must be ts or fmp4');
  return o;
}

function findDemoBin(o) {
  if (o.demoBin) return o.demoBin;
  const candidates = [];
  if (process.env.CARGO_TARGET_DIR) candidates.push(path.join(process.env.CARGO_TARGET_DIR, 'debug', 'hivecast-demo'));
  candidates.push(path.join(repo, 'target', 'debug', 'hivecast-demo'));
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`hivecast-demo binary not found (tried ${candidates.join(', ')}); build it or pass --demo-bin`);
  return found;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts the demo and resolves with {child, url} once it prints its readiness line.
function startDemo(o) {
  const bin = findDemoBin(o);
  const args = ['--listen', '127.0.0.1:0', '--agents', String(o.agents), '--duration', String(o.timeout + 60), '--format', o.format];
  if (o.mode === 'origin-direct') args.push('--origin-direct');
  console.log(`# starting ${bin} ${args.join(' ')}`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderrTail = '';
  child.stderr.on('data', (d) => {
    stderrTail = (stderrTail + d.toString()).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`demo not ready within 120 s; stderr:\n${stderrTail}`));
    }, 120_000);
    child.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(/hivecast-demo ready: (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stderr: () => stderrTail });
      }
    });
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`demo exited early (code ${code}, signal ${sig}); stderr:\n${stderrTail}`));
    });
  });
}

function stopDemo(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', (code, signal) => {
      clearTimeout(kill);
      resolve({ code, signal });
    });
    child.kill('SIGTERM');
  });
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  mkdirSync(o.artifacts, { recursive: true });
  const results = [];
  const check = (name, ok, detail = '') => {
    results.push({ name, ok });
    console.log(`${ok ? 'ok' : 'FAILED'} - ${name}${detail ? ': ' + detail : ''}`);
  };

  let demo = null;
  let browser = null;
  try {
    let url = o.url;
    if (!url) {
      demo = await startDemo(o);
      url = demo.url;
    }
    console.log(`# page ${url}`);
    browser = await chromium.launch({
      executablePath: o.chromium,
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
      ],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const pageErrors = [];
    const consoleErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction(
      (n) => window.hivecastDemo && window.hivecastDemo.players.length === n,
      o.agents, { timeout: 20_000 },
    );
    check('page loads with one player per agent', true, `${o.agents} players`);

    // Watch playback: each player's currentTime must advance min-advance seconds past the
    // first time it was seen playing.
    const first = new Map();
    const deadline = Date.now() + o.timeout * 1000;
    let snap = null;
    let advanced = [];
    let peersSeen = false;
    while (Date.now() < deadline) {
      snap = await page.evaluate(() => window.hivecastDemo.snapshot());
      advanced = snap.players.map((p) => {
        if (!first.has(p.name) && p.currentTime > 0) first.set(p.name, p.currentTime);
        return first.has(p.name) ? p.currentTime - first.get(p.name) : 0;
      });
      peersSeen = snap.players.some((p) => p.stats && p.stats.peer > 0);
      const allAdvanced = advanced.every((a) => a >= o.minAdvance);
      if (allAdvanced && (!o.expectPeers || peersSeen)) break;
      await sleep(1000);
    }
    // One more poll cycle so the charts have data, then the screenshot.
    await sleep(1500);
    snap = await page.evaluate(() => window.hivecastDemo.snapshot());
    const shot = path.join(o.artifacts, 'demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    writeFileSync(path.join(o.artifacts, 'demo-snapshot.json'), JSON.stringify(snap, null, 2));
    console.log(`# screenshot ${shot}`);

    snap.players.forEach((p, i) => {
      check(`${p.name} currentTime advanced >= ${o.minAdvance} s`, advanced[i] >= o.minAdvance,
        `advanced ${advanced[i].toFixed(1)} s (currentTime ${p.currentTime.toFixed(1)}, ${p.videoWidth}px wide)`);
      check(`${p.name} has no fatal hls.js error`, p.fatal.length === 0, p.fatal.join(', '));
      if (o.mode === 'p2p') {
        check(`${p.name} agent stats reachable`, !!p.stats && !p.statsError, p.statsError || '');
        check(`${p.name} agent reports no integrity failures`, !!p.stats && p.stats.integrity === 0,
          p.stats ? `${p.stats.integrity} failures` : 'no stats');
      }
    });
    check('no uncaught page errors', pageErrors.length === 0, pageErrors.join(' | '));
    if (consoleErrors.length) console.log(`# console errors (not fatal): ${consoleErrors.slice(0, 5).join(' | ')}`);
    if (o.expectPeers) {
      check('at least one agent downloaded bytes from peers', peersSeen,
        snap.players.map((p) => `${p.name}: peer=${p.stats ? p.stats.peer : 'n/a'}`).join(', '));
    } else {
      console.log('# peer bytes not required (pass --expect-peers once agents share segments)');
    }
  } catch (e) {
    check('harness', false, e && e.stack ? e.stack : String(e));
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (demo) {
      const { code, signal } = await stopDemo(demo.child);
      check('demo exits cleanly on SIGTERM', code === 0, `code ${code}, signal ${signal}`);
    }
  }
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
