/**
 * HTTP(S) through the ingress proxy as a browser would see it, without DNS: every name of the
 * deployment resolves to the proxy's listen address, the TLS SNI is the real host name, and the
 * one certificate trusted is the proxy's self-signed fallback (fetched from its container), so a
 * certificate from anywhere else fails the handshake.
 */
import { Agent, fetch as undiciFetch } from "undici";

/**
 * @param {object} options
 * @param {string} options.address  the proxy devices' listen address (the host's public IPv4)
 * @param {string[]} options.names  host names that resolve to `address`
 * @param {string} options.ca       PEM of the fallback certificate
 */
export function proxyClient({ address, names, ca }) {
  const known = new Set(names);
  const lookup = (hostname, opts, callback) => {
    if (!known.has(hostname)) {
      callback(new Error(`${hostname} is not a name of this deployment`));
      return;
    }
    if (opts && opts.all) callback(null, [{ address, family: 4 }]);
    else callback(null, address, 4);
  };
  const dispatcher = new Agent({
    connect: {
      lookup,
      ca,
      // The fallback certificate names `ingress-proxy.invalid`, not the requested host: the chain
      // is still verified against that one certificate, only the name check is skipped.
      checkServerIdentity: () => undefined,
    },
  });
  /** A fetch that matrix-js-sdk (and the checks) use: same API as the global one. */
  const fetch = (input, init = {}) => undiciFetch(input, { ...init, dispatcher, redirect: init.redirect ?? "manual" });
  return { fetch, close: () => dispatcher.close() };
}

/** GET and read the body; returns { status, headers, text, json() }. */
export async function get(fetch, url, init = {}) {
  const res = await fetch(url, { ...init, method: init.method ?? "GET" });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    json() {
      return JSON.parse(text);
    },
  };
}
