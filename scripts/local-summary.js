// Prints, after `npm run local:deploy`, where the new homeserver answers and how to reach it
// from this machine without DNS. Usage: node scripts/local-summary.js CONFIG STATE_DIR
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const [file, stateDir] = process.argv.slice(2);
const c = YAML.parse(fs.readFileSync(file, "utf8"));
const ip = c.host.public_ipv4;
const d = c.project.domain;
const net = c.host.ipv4_network_part;
const parts = c.project.host_parts ?? {};
const names = [d, `matrix.${d}`, `element.${d}`];
const generated = path.join(stateDir, "local-admin-password");
const password = fs.existsSync(generated) ? `in ${generated} (generated; mode 0600)` : "the one you exported as TF_VAR_admin_password";
console.log(`
Matrix homeserver ${d} is deployed on this machine.

  Element        https://element.${d}/
  Homeserver     https://matrix.${d}/   (clients: server name ${d})
  synapse-admin  http://${net}.${parts.synapse_admin ?? 22}/   (this machine only; homeserver http://${net}.${parts.synapse ?? 20}:8008)
  Admin user     @${c.project.admin.username}:${d}, password ${password}

The names have no DNS: add this line to /etc/hosts (or the hosts file of a browser on this machine)
  ${ip} ${names.join(" ")}
or ask with curl:  curl --resolve matrix.${d}:443:${ip} -k https://matrix.${d}/_matrix/client/versions
Until Let's Encrypt can issue certificates (it cannot without public DNS), the proxy serves a
self-signed fallback certificate: accept it in the browser, or trust it explicitly.

Tear down: npm run local:destroy -- ${file}           (keeps the data volumes)
           npm run local:destroy -- ${file} --purge && npm run host:down -- ${file} --purge   (removes everything)
`);
