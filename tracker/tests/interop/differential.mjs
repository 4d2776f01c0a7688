// Differential interop test: runs one scripted scenario of the WebTorrent tracker
// protocol against the reference implementation (npm `bittorrent-tracker`, started
// here in-process on 127.0.0.1:0) and against hivecast-tracker (URL given as the first
// argument), then compares the normalized transcripts.
//
// Usage: node differential.mjs ws://127.0.0.1:PORT/announce
// Exit: 0 = transcripts agree (after documented normalization), 1 = they differ,
//       2 = setup error (reference server, connection, timeout).
//
// The client speaks the raw protocol with the `ws` package (SDP strings are opaque).
// Scenario: two peers (A, B), three swarms, offers and answers relayed both ways,
// single and multi scrape, `completed`, `stopped`, protocol errors, and a socket that
// closes (must count as `stopped` in every swarm it joined).
//
// Normalization (each a deliberate hivecast difference, see tracker/README notes):
//   * ids (info_hash, peer_id, offer_id, scrape keys) are shown as hex for readability;
//   * `min interval` is removed: hivecast sends it (BEP 3 field, issue requirement),
//     bittorrent-tracker does not;
//   * scrape `flags.min_request_interval` becomes "<interval>": bittorrent-tracker
//     reports its HTTP announce interval (600 s), hivecast its WebSocket interval;
//   * scrape `downloaded` is removed: bittorrent-tracker reports the current seeder
//     count as a lower bound, hivecast counts `completed` events (BEP 48);
//   * the `failure reason` for text that is not JSON becomes "<invalid json>": each
//     side words its JSON parser's error differently.
// Documented behavioural differences are checked separately (not compared equal):
//   * a full scrape (no info_hash): reference lists every swarm, hivecast refuses;
//   * an answer to an offer that was never relayed to the answerer: reference relays
//     it, hivecast drops it (only the chosen target may answer an offer, once).

import { createRequire } from 'node:module'

let WebSocket
try {
  WebSocket = (await import('ws')).default
} catch {
  // `ws` is a dependency of bittorrent-tracker; resolve it from there if it is not
  // hoisted to the top-level node_modules.
  const require = createRequire(new URL('../../../node_modules/bittorrent-tracker/package.json', import.meta.url))
  WebSocket = require('ws')
}
const { default: Server } = await import('bittorrent-tracker/server')

const STEP_TIMEOUT_MS = 5000
const POLL_LIMIT_MS = 3000

const hex2bin = (hex) => Buffer.from(hex, 'hex').toString('latin1')
const bin2hex = (bin) => Buffer.from(bin, 'latin1').toString('hex')

// 20-byte ids; several contain bytes >= 0x80 to exercise the latin1 codec.
const S1 = hex2bin('ff'.repeat(10) + '0102030405060708090a')
const S2 = hex2bin('80'.repeat(20))
const S3 = hex2bin('00112233445566778899aabbccddeeff00112233')
const BARRIER = hex2bin('ba'.repeat(20))
const UNKNOWN = hex2bin('de'.repeat(20))
const PEER_A = '-HC0001-' + hex2bin('aaaaaaaaaaaaaaaaaaaaaaff')
const PEER_B = '-HC0001-' + hex2bin('bbbbbbbbbbbbbbbbbbbbbbfe')
const offerId = (n) => hex2bin(n.toString(16).padStart(2, '0').repeat(20))
const sdp = (type, text) => ({ type, sdp: `v=0\r\no=- ${text} 2 IN IP4 127.0.0.1\r\n` })

const ID_FIELDS = ['info_hash', 'peer_id', 'offer_id', 'to_peer_id']

class Client {
  constructor (name, url) {
    this.name = name
    this.url = url
    this.queue = []
    this.waiters = []
    this.closed = false
  }

  open () {
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(this.url)
      this.ws.on('open', resolve)
      this.ws.on('error', reject)
      this.ws.on('message', (data) => {
        const msg = JSON.parse(data.toString())
        const w = this.waiters.shift()
        if (w) w(msg)
        else this.queue.push(msg)
      })
      this.ws.on('close', () => { this.closed = true })
    })
  }

  send (obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)) }

  next () {
    if (this.queue.length) return Promise.resolve(this.queue.shift())
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no message within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS)
      this.waiters.push((m) => { clearTimeout(t); resolve(m) })
    })
  }

  // Sends a scrape of the barrier swarm and returns every message received before its
  // response. Replies and relays are in order on one socket, so this collects exactly
  // what the tracker sent this client up to now.
  async drain () {
    this.send({ action: 'scrape', info_hash: BARRIER })
    const got = []
    for (;;) {
      const m = await this.next()
      if (m.action === 'scrape' && m.files && Object.keys(m.files).length === 1 && m.files[BARRIER]) return got
      got.push(m)
    }
  }

  close () {
    return new Promise((resolve) => {
      if (this.closed) return resolve()
      this.ws.once('close', resolve)
      this.ws.close()
    })
  }
}

function normalize (msg, side) {
  const out = JSON.parse(JSON.stringify(msg))
  for (const f of ID_FIELDS) {
    if (typeof out[f] === 'string') out[f] = bin2hex(out[f])
  }
  if (side === 'hivecast') delete out['min interval']
  if (out.files) {
    const files = {}
    for (const [k, v] of Object.entries(out.files)) {
      const { downloaded, ...rest } = v
      files[bin2hex(k)] = rest
    }
    out.files = files
  }
  if (out.flags && 'min_request_interval' in out.flags) out.flags.min_request_interval = '<interval>'
  const reason = out['failure reason']
  if (typeof reason === 'string') {
    const refJson = side === 'reference' && /JSON|Unexpected token/.test(reason)
    const ourJson = side === 'hivecast' && reason.startsWith('invalid message:')
    if (refJson || ourJson) out['failure reason'] = '<invalid json>'
  }
  return sortKeys(out)
}

function sortKeys (v) {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]))
  }
  return v
}

function announce (peer, infoHash, event, extra = {}) {
  return { action: 'announce', info_hash: infoHash, peer_id: peer, numwant: 5, uploaded: 0, downloaded: 0, left: 100, event, ...extra }
}

function offers (tag, ids) {
  return ids.map((n) => ({ offer: sdp('offer', `${tag}-${n}`), offer_id: offerId(n) }))
}

// Runs the scenario against one tracker URL; returns { steps, checks }.
async function scenario (url, side) {
  const steps = []
  const a = new Client('A', url)
  const b = new Client('B', url)
  await a.open()
  await b.open()
  const clients = [a, b]

  // One step: perform actions (each followed by a drain of its own socket), then
  // drain every socket. Records all messages, normalized, per client.
  async function step (name, actions) {
    const got = { A: [], B: [] }
    for (const [client, payload] of actions) {
      client.send(payload)
      got[client.name].push(...await client.drain())
    }
    for (const c of clients) {
      if (!c.closed) got[c.name].push(...await c.drain())
    }
    steps.push({ step: name, A: got.A.map((m) => normalize(m, side)), B: got.B.map((m) => normalize(m, side)) })
    return got
  }

  await step('A joins S1 (leecher, no offers)', [[a, announce(PEER_A, S1, 'started')]])
  await step('B joins S1 as seeder with one offer -> relayed to A', [
    [b, announce(PEER_B, S1, 'started', { left: 0, offers: offers('B', [1]) })]
  ])
  await step('A answers offer 1 -> relayed to B', [
    [a, { action: 'announce', info_hash: S1, peer_id: PEER_A, to_peer_id: PEER_B, offer_id: offerId(1), answer: sdp('answer', 'A-1') }]
  ])
  await step('A update in S1 with two offers -> one relayed to B (only other peer)', [
    [a, announce(PEER_A, S1, 'update', { offers: offers('A', [2, 3]) })]
  ])
  // Answer whichever of A's offers reached B.
  const lastOffer = steps[steps.length - 1].B.find((m) => m.offer)
  if (!lastOffer) throw new Error('B did not receive an offer from A')
  await step('B answers the offer it got -> relayed to A', [
    [b, { action: 'announce', info_hash: S1, peer_id: PEER_B, to_peer_id: PEER_A, offer_id: hex2bin(lastOffer.offer_id), answer: sdp('answer', 'B-x') }]
  ])
  await step('A joins S2 with two offers (alone: nothing relayed)', [
    [a, announce(PEER_A, S2, 'started', { offers: offers('A', [4, 5]) })]
  ])
  await step('B joins S2 and S3 with offers -> relayed to A', [
    [b, announce(PEER_B, S2, 'started', { offers: offers('B', [6]) })],
    [a, announce(PEER_A, S3, 'started')],
    [b, announce(PEER_B, S3, 'started', { offers: offers('B', [7]) })]
  ])
  await step('scrape one and several info_hash values', [
    [a, { action: 'scrape', info_hash: S1 }],
    [b, { action: 'scrape', info_hash: [S1, S2, S3, UNKNOWN] }]
  ])
  await step('A completes S1', [[a, announce(PEER_A, S1, 'completed', { left: 0 })]])
  await step('B leaves S2 (stopped)', [
    [b, announce(PEER_B, S2, 'stopped')],
    [a, { action: 'scrape', info_hash: [S1, S2, S3] }]
  ])
  await step('protocol errors', [
    [a, announce('short', S1, 'started')],
    [a, { action: 'announce', info_hash: 'short', peer_id: PEER_A }],
    [a, { action: 'announce', info_hash: S1, peer_id: 12345 }],
    [a, { action: 'bogus' }],
    [a, 'this is not json'],
    [a, { action: 'announce', info_hash: S1, peer_id: PEER_A, offer_id: offerId(9), answer: sdp('answer', 'no-target') }]
  ])
  await step('answer for an unknown peer is dropped silently', [
    [a, { action: 'announce', info_hash: S1, peer_id: PEER_A, to_peer_id: hex2bin('77'.repeat(20)), offer_id: offerId(1), answer: sdp('answer', 'nobody') }]
  ])

  // Documented differences: recorded per side, checked against each side's expectation.
  const checks = {}
  a.send({ action: 'scrape' })
  checks.fullScrape = await a.next()
  a.send({ action: 'announce', info_hash: S3, peer_id: PEER_A, to_peer_id: PEER_B, offer_id: offerId(42), answer: sdp('answer', 'unsolicited') })
  await a.drain()
  checks.unsolicitedAnswerAtB = await b.drain()

  // B's socket closes: B must leave S1 and S3 (it already left S2).
  await b.close()
  const deadline = Date.now() + POLL_LIMIT_MS
  let after
  for (;;) {
    a.send({ action: 'scrape', info_hash: [S1, S2, S3] })
    after = await a.next()
    const f = after.files || {}
    const gone = f[S1] && f[S3] && f[S1].complete + f[S1].incomplete === 1 && f[S3].complete + f[S3].incomplete === 1
    if (gone || Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  steps.push({ step: 'B socket closed: counts after close', A: [normalize(after, side)], B: [] })

  await step('A leaves S1 (stopped): swarm empty', [
    [a, announce(PEER_A, S1, 'stopped')],
    [a, { action: 'scrape', info_hash: S1 }]
  ])
  await a.close()
  return { steps, checks }
}

function startReference () {
  return new Promise((resolve, reject) => {
    const server = new Server({ udp: false, http: false, ws: true, stats: false })
    server.on('error', reject)
    server.on('warning', () => {})
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.http.address()
      resolve({ server, url: `ws://127.0.0.1:${port}` })
    })
  })
}

async function main () {
  const hivecastUrl = process.argv[2]
  if (!hivecastUrl) {
    console.error('usage: node differential.mjs <hivecast ws url>')
    process.exit(2)
  }
  const ref = await startReference()
  let reference, hivecast
  try {
    reference = await scenario(ref.url, 'reference')
    hivecast = await scenario(hivecastUrl, 'hivecast')
  } finally {
    await new Promise((resolve) => ref.server.close(resolve))
  }

  let failures = 0
  for (let i = 0; i < Math.max(reference.steps.length, hivecast.steps.length); i++) {
    const r = reference.steps[i]
    const h = hivecast.steps[i]
    const rs = JSON.stringify(r)
    const hs = JSON.stringify(h)
    if (rs === hs) {
      console.log(`ok   ${r.step}`)
      if (process.env.DIFF_VERBOSE) console.log(`  both: ${rs}`)
    } else {
      failures++
      console.log(`DIFF ${r ? r.step : h.step}`)
      console.log(`  reference: ${rs}`)
      console.log(`  hivecast:  ${hs}`)
    }
  }

  // Full scrape: reference answers with every swarm; hivecast refuses.
  const rf = reference.checks.fullScrape
  const hf = hivecast.checks.fullScrape
  if (rf.action === 'scrape' && rf.files && typeof hf['failure reason'] === 'string' && hf.action === 'scrape') {
    console.log('ok   documented difference: full scrape (reference lists all swarms, hivecast refuses)')
  } else {
    failures++
    console.log(`DIFF full scrape: reference ${JSON.stringify(rf)} hivecast ${JSON.stringify(hf)}`)
  }
  // Unsolicited answer: reference relays it, hivecast drops it.
  const ru = reference.checks.unsolicitedAnswerAtB
  const hu = hivecast.checks.unsolicitedAnswerAtB
  if (ru.length === 1 && ru[0].answer && hu.length === 0) {
    console.log('ok   documented difference: unsolicited answer (reference relays, hivecast drops)')
  } else {
    failures++
    console.log(`DIFF unsolicited answer: reference ${JSON.stringify(ru)} hivecast ${JSON.stringify(hu)}`)
  }

  const total = reference.steps.length + 2
  console.log(`${total - failures} passed, ${failures} failed`)
  process.exit(failures === 0 ? 0 : 1)
}

main().catch((e) => {
  console.error(`setup error: ${e && e.stack ? e.stack : e}`)
  process.exit(2)
})
