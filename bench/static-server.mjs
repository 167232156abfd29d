// A reference server for the core benchmark: plain node:http serving fixed bytes.
// Its latency under the same load, in the same run, is what this machine and the load
// generator cost by themselves. Usage: node bench/static-server.mjs BODY_FILE PORT
import { readFileSync } from 'node:fs';
import http from 'node:http';

const [file, port] = process.argv.slice(2);
const body = readFileSync(file);
http
  .createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-encoding': 'gzip', 'content-length': body.length });
    res.end(body);
  })
  .listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
