import { serverAudits } from 'graphql-http';
const url = process.argv[2];
const results = [];
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const r = await audit.fn();
  results.push({ id: audit.id, name: audit.name, status: r.status, reason: r.reason });
}
let failed = 0;
for (const r of results) {
  if (r.status !== 'ok') { failed++; console.log(`${r.status.toUpperCase()} ${r.name}${r.reason ? ': ' + r.reason : ''}`); }
}
console.log(`${results.length - failed}/${results.length} audits pass`);
process.exit(failed ? 1 : 0);
