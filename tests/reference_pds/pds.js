// The reference Bluesky server (@atproto/pds with a PLC directory, from @atproto/dev-env),
// on 127.0.0.1 only.  Prints one JSON line {service, handle, password, did} when ready;
// stops on SIGTERM or when stdin closes (the test that started it is gone).
const http = require('http')
const net = require('net')

// dev-env's servers call listen(port) (every interface): bind them to 127.0.0.1.
for (const proto of [http.Server.prototype, net.Server.prototype]) {
  const listen = proto.listen
  proto.listen = function (...args) {
    if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] !== 'string')) {
      args.splice(1, 0, '127.0.0.1')
    } else if (args[0] && typeof args[0] === 'object' && !args[0].path) {
      args[0] = { ...args[0], host: '127.0.0.1' }
    }
    return listen.apply(this, args)
  }
}

// Node 20 has no zstd; undici only needs it to decode a zstd answer, which nothing
// here sends.  (dev-env asks for node >= 22.)
const zlib = require('zlib')
if (!zlib.createZstdDecompress) {
  zlib.createZstdDecompress = () => { throw new Error('zstd is not supported by this node') }
  zlib.constants.ZSTD_d_windowLogMax = zlib.constants.ZSTD_d_windowLogMax ?? 100
}

// Likewise worker_threads.markAsUncloneable (node >= 22.10), which undici calls.
const workerThreads = require('worker_threads')
if (!workerThreads.markAsUncloneable) workerThreads.markAsUncloneable = () => {}

// And the iterator helpers (node >= 22): the PDS filters an iterator at load time.
const IteratorProto = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()))
const helpers = {
  * map(fn) { let i = 0; for (const v of this) yield fn(v, i++) },
  * filter(fn) { let i = 0; for (const v of this) if (fn(v, i++)) yield v },
  * take(n) { if (n <= 0) return; for (const v of this) { yield v; if (--n <= 0) return } },
  * drop(n) { for (const v of this) { if (n > 0) { n--; continue } yield v } },
  * flatMap(fn) { let i = 0; for (const v of this) yield * fn(v, i++) },
  toArray() { return [...this] },
  forEach(fn) { let i = 0; for (const v of this) fn(v, i++) },
  some(fn) { let i = 0; for (const v of this) if (fn(v, i++)) return true; return false },
  every(fn) { let i = 0; for (const v of this) if (!fn(v, i++)) return false; return true },
  find(fn) { let i = 0; for (const v of this) if (fn(v, i++)) return v },
  reduce(fn, ...init) {
    let i = 0; let acc = init.length ? init[0] : undefined; let first = !init.length
    for (const v of this) { if (first) { acc = v; first = false } else acc = fn(acc, v, i); i++ }
    return acc
  },
}
for (const [name, fn] of Object.entries(helpers)) {
  if (!IteratorProto[name]) {
    Object.defineProperty(IteratorProto, name, { value: fn, writable: true, configurable: true })
  }
}
if (typeof globalThis.Iterator === 'undefined') {
  globalThis.Iterator = { prototype: IteratorProto, from: (it) => it[Symbol.iterator]() }
}

const { TestNetworkNoAppView } = require('@atproto/dev-env')

async function main() {
  const pdsPort = Number(process.argv[2])
  const plcPort = Number(process.argv[3])
  const network = await TestNetworkNoAppView.create({
    pds: { port: pdsPort, hostname: 'localhost' },
    plc: { port: plcPort },
  })
  const handle = 'harbournews.test'
  const password = 'app-pass-1234'
  const res = await fetch(`${network.pds.url}/xrpc/com.atproto.server.createAccount`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'news@test.example', handle, password }),
  })
  const account = await res.json()
  if (!res.ok) throw new Error(`createAccount answered ${res.status}: ${JSON.stringify(account)}`)
  const stop = async () => {
    try { await network.close() } finally { process.exit(0) }
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.resume()
  console.log(JSON.stringify({ service: network.pds.url, handle, password, did: account.did }))
}

main().catch((e) => { console.error(e); process.exit(1) })
