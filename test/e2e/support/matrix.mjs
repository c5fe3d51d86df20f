/**
 * What a Matrix user does, with matrix-js-sdk through the ingress proxy: log in, create a room,
 * invite, join, send and read messages. User creation goes through Synapse's admin API on its
 * internal address, as synapse-admin does, because the public proxy refuses that API.
 */
import { createClient, Direction } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel?.("warn");

export async function login(baseUrl, fetchFn, user, password) {
  const client = createClient({ baseUrl, fetchFn });
  const res = await client.loginWithPassword(user, password);
  return createClient({ baseUrl, fetchFn, accessToken: res.access_token, userId: res.user_id, deviceId: res.device_id });
}

/** PUT /_synapse/admin/v2/users/<id> on Synapse's own listener (not through the proxy). */
export async function createUserViaAdminApi(internalUrl, adminToken, userId, password) {
  const res = await fetch(`${internalUrl}/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ password, admin: false, displayname: userId.slice(1).split(":")[0] }),
  });
  const body = await res.text();
  if (res.status !== 200 && res.status !== 201) throw new Error(`admin API user creation answered ${res.status}: ${body}`);
  return JSON.parse(body);
}

/** The text bodies of the last `limit` messages in a room, oldest first. */
export async function readMessages(client, roomId, limit = 50) {
  const res = await client.createMessagesRequest(roomId, null, limit, Direction.Backward);
  return res.chunk
    .filter((e) => e.type === "m.room.message")
    .map((e) => `${e.sender}: ${e.content.body}`)
    .reverse();
}

/** Two users, one private room, messages both ways; returns what a later check must find again. */
export async function conversation(admin, user) {
  const { room_id: roomId } = await admin.createRoom({ name: "e2e", invite: [user.getUserId()], preset: "private_chat" });
  await user.joinRoom(roomId, { syncRoom: false });
  const lines = [
    [admin, "hello from the admin"],
    [user, "hello from the second user"],
  ];
  for (const [client, text] of lines) await client.sendTextMessage(roomId, text);
  const expected = lines.map(([client, text]) => `${client.getUserId()}: ${text}`);
  return { roomId, expected };
}
