/* peertree-server — connections: the registry of clients, sending, replies
 * and events, the message rate, and teardown.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Clients are indexed by clientId in a hash table, so routing a message to a
 * peer is O(1) whatever the number of connected clients.
 *
 * Connection life cycle:
 *   accepted ──hello──▶ registered ──(close | dead | flood)──▶ gone
 * A connection that is "gone" has already been removed from every index and
 * every tree (its peers told, by the modules' conn_gone hooks); only its
 * WebSocket close handshake (pt-ws.c) may still be running, and its PtConn is
 * freed when that ends. No message of a gone connection is read.
 */
#include "pt-server-private.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Sending                                                                  */

/* A client that does not read makes its output buffer grow: past
 * max-buffered it is marked slow, nothing more is queued to it and the
 * sweep disconnects it. */
static gboolean
conn_can_send (PtConn *c)
{
  return !c->gone && !c->slow && pt_ws_is_open (c->ws);
}

static void
conn_check_buffered (PtConn *c)
{
  if (pt_ws_get_buffered (c->ws) > c->server->max_buffered) {
    g_debug ("client %s does not read: %" G_GSIZE_FORMAT " bytes queued", c->client_id,
        pt_ws_get_buffered (c->ws));
    c->slow = TRUE;
  }
}

/* The bytes queued, or -1 if @c cannot be sent to. @m's text is made on
 * first use. */
static gssize
conn_send (PtConn *c, PtOutgoing *m)
{
  if (c->remote ? c->gone : !conn_can_send (c))
    return -1;
  if (m->text == NULL) {
    g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), m->obj);
    m->text = json_to_string (node, FALSE);
    m->len = strlen (m->text);
  }
  if (c->remote) {
    pt_cluster_send (c, FALSE, m->text, m->len);
    return m->len;
  }
  pt_ws_send (c->ws, FALSE, m->text, m->len);
  conn_check_buffered (c);
  return m->len;
}

void
pt_outgoing_clear (PtOutgoing *m)
{
  g_clear_pointer (&m->text, g_free);
}

gboolean
pt_conn_deliver (PtConn *c, PtOutgoing *m, gboolean relayed)
{
  gssize n = conn_send (c, m);
  if (n < 0)
    return FALSE;
  if (relayed) {
    c->server->metrics.messages_relayed++;
    c->server->metrics.bytes_relayed += n;
  }
  return TRUE;
}

static gboolean
conn_deliver_object (PtConn *c, JsonObject *obj, gboolean relayed)
{
  g_auto (PtOutgoing) m = PT_OUTGOING_INIT (obj);
  return pt_conn_deliver (c, &m, relayed);
}

gboolean
pt_conn_send (PtConn *c, JsonObject *obj)
{
  return conn_deliver_object (c, obj, FALSE);
}

gboolean
pt_conn_relay (PtConn *c, JsonObject *obj)
{
  return conn_deliver_object (c, obj, TRUE);
}

void
pt_conn_send_binary (PtConn *c, const guint8 *data, gsize len)
{
  if (c->remote) {
    pt_cluster_send (c, TRUE, data, len);
    return;
  }
  if (!conn_can_send (c))
    return;
  pt_ws_send (c->ws, TRUE, data, len);
  conn_check_buffered (c);
}

void
pt_conn_send_raw (PtConn *c, gboolean binary, const guint8 *data, gsize len)
{
  if (c->remote || !conn_can_send (c))
    return;
  pt_ws_send (c->ws, binary, data, len);
  conn_check_buffered (c);
}

void
pt_conn_relay_binary (PtConn *c, const guint8 *data, gsize len)
{
  if (c->remote) {
    c->server->metrics.messages_relayed++;
    c->server->metrics.bytes_relayed += len;
    pt_cluster_send (c, TRUE, data, len);
    return;
  }
  if (!conn_can_send (c))
    return;
  c->server->metrics.messages_relayed++;
  c->server->metrics.bytes_relayed += len;
  pt_ws_send (c->ws, TRUE, data, len);
  conn_check_buffered (c);
}

void
pt_conn_reply_ok (PtConn *c, gint64 id, JsonObject *result /* transfer full, nullable */)
{
  g_autoptr (JsonObject) obj = json_object_new ();
  json_object_set_string_member (obj, PT_F_TYPE, PT_TYPE_REPLY);
  json_object_set_int_member (obj, PT_F_ID, id);
  json_object_set_boolean_member (obj, PT_F_OK, TRUE);
  json_object_set_object_member (obj, PT_F_RESULT, result ? result : json_object_new ());
  pt_conn_send (c, obj);
}

void
pt_conn_reply_error (PtConn *c, gint64 id, const PtFault *f)
{
  g_autoptr (JsonObject) obj = json_object_new ();
  g_autoptr (JsonObject) err = json_object_new ();
  pt_metrics_count_error (c->server, f->code);
  json_object_set_string_member (obj, PT_F_TYPE, PT_TYPE_REPLY);
  if (id >= 0)
    json_object_set_int_member (obj, PT_F_ID, id);
  else
    json_object_set_null_member (obj, PT_F_ID);
  json_object_set_boolean_member (obj, PT_F_OK, FALSE);
  json_object_set_string_member (err, PT_F_CODE, f->code);
  json_object_set_string_member (err, PT_F_MESSAGE, f->message);
  json_object_set_object_member (obj, PT_F_ERROR, g_steal_pointer (&err));
  pt_conn_send (c, obj);
}

/* A new event @name, with the tree's id (PT_F_TREE_ID) unless @tree_id is NULL. */
JsonObject *
pt_event_new (const char *name, const char *tree_id)
{
  JsonObject *obj = pt_msg_event_new (name);
  if (tree_id)
    json_object_set_string_member (obj, PT_F_TREE_ID, tree_id);
  return obj;
}

void
pt_send_event_to (PtServer *self, const char *client_id, JsonObject *event /* transfer full */)
{
  PtConn *c = g_hash_table_lookup (self->clients, client_id);
  if (c)
    pt_conn_send (c, event);
  json_object_unref (event);
}

/* ------------------------------------------------------------------------ */
/* Secrets                                                                  */


void
pt_hash_secret (const char *secret, guint8 out[32])
{
  gsize len = 32;
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (sum, (const guchar *) secret, strlen (secret));
  g_checksum_get_digest (sum, out, &len);
}

gboolean
pt_secret_equal (const guint8 *a, const guint8 *b)
{
  guint8 diff = 0; /* constant time */
  for (int i = 0; i < 32; i++)
    diff |= a[i] ^ b[i];
  return diff == 0;
}

/* ------------------------------------------------------------------------ */
/* Message rate                                                             */

static gboolean conn_take_token (PtConn *c);

/* Charges one message to @c's rate bucket; an empty bucket disconnects it. */
gboolean
pt_conn_take_token (PtConn *c)
{
  if (!conn_take_token (c)) {
    pt_conn_gone (c, PT_CLOSE_POLICY, "message rate limit exceeded");
    return FALSE;
  }
  return TRUE;
}

static gboolean
conn_take_token (PtConn *c)
{
  PtServer *self = c->server;
  if (c->remote)
    return TRUE; /* charged by the server it is connected to */
  gint64 now = pt_now ();
  c->tokens += (double) (now - c->tokens_at) * self->rate / G_USEC_PER_SEC;
  if (c->tokens > self->burst)
    c->tokens = self->burst;
  c->tokens_at = now;
  if (c->tokens < 1.0)
    return FALSE;
  c->tokens -= 1.0;
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

static void
on_ws_message (PtWs *ws, gboolean binary, const guint8 *data, gsize len, gpointer user_data)
{
  PtConn *c = user_data;
  if (c->gone)
    return;
  c->last_seen = pt_now ();
  c->receive (c, binary, data, len);
}

static void
on_ws_pong (PtWs *ws, gpointer user_data)
{
  PtConn *c = user_data;
  c->last_seen = pt_now ();
}

/* Removes @c from every index and, through the modules' conn_gone hooks, from
 * every tree, room, stream... (telling its peers), then closes its socket with
 * @code if still open. Idempotent. */
void
pt_conn_gone (PtConn *c, gushort code, const char *reason)
{
  PtServer *self = c->server;
  if (c->gone)
    return;
  c->gone = TRUE;
  if (c->client_id) {
    /* c->gone makes every send to c a no-op; c stays in clients until the
     * modules have forgotten it so that lookups of it stay consistent. */
    for (guint i = 0; i < self->hooks->len; i++) {
      const PtHooks *hooks = self->hooks->pdata[i];
      if (hooks->conn_gone)
        hooks->conn_gone (c);
    }
    if (g_hash_table_lookup (self->clients, c->client_id) == c)
      g_hash_table_remove (self->clients, c->client_id);
  }
  if (c->remote)
    pt_cluster_proxy_free (c); /* frees */
  else if (c->closed)
    g_hash_table_remove (self->conns, c); /* frees */
  else
    pt_ws_close (c->ws, code, reason);
}

void
pt_conn_free (PtConn *c)
{
  g_clear_pointer (&c->acks, g_hash_table_unref);
  g_clear_pointer (&c->rooms, g_hash_table_unref);
  g_clear_pointer (&c->targets, g_hash_table_unref);
  g_clear_pointer (&c->streams, g_hash_table_unref);
  g_clear_pointer (&c->subscriptions, g_hash_table_unref);
  g_clear_pointer (&c->services, g_hash_table_unref);
  pt_cluster_conn_free (c);
  if (c->ws)
    pt_ws_free (c->ws);
  if (c->trees)
    g_hash_table_unref (c->trees);
  if (!c->remote)
    pt_limits_socket_closed (c->server, c->ip);
  g_free (c->ip);
  pt_grants_free (c->grants);
  g_free (c->client_id);
  g_free (c);
}

static void
on_ws_closed (PtWs *ws, gpointer user_data)
{
  PtConn *c = user_data;
  PtServer *self = c->server;
  g_debug ("client %s closed (code %u)", c->client_id ? c->client_id : "(no hello)",
      pt_ws_get_close_code (ws));
  c->closed = TRUE;
  pt_conn_gone (c, 0, NULL); /* removes and frees c */
  if (g_hash_table_contains (self->conns, c))
    g_hash_table_remove (self->conns, c);
}

/* Pings and pongs from the client count against its message rate: each ping
 * makes a pong, and a flood of them must end like a flood of messages. */
static gboolean
on_ws_control (PtWs *ws, gpointer user_data)
{
  PtConn *c = user_data;
  if (c->gone)
    return FALSE;
  return pt_conn_take_token (c);
}

static void
on_ws_stalled (PtWs *ws, gpointer user_data)
{
  PtConn *c = user_data;
  conn_check_buffered (c);
}

static const PtWsCallbacks ws_callbacks = { on_ws_message, on_ws_pong, on_ws_control,
  on_ws_stalled, on_ws_closed };

static PtConn *
conn_new (PtServer *self, GIOStream *stream, int fd, const guint8 *initial, gsize initial_len,
    PtReceiveFunc receive)
{
  PtConn *c = g_new0 (PtConn, 1);
  c->server = self;
  c->receive = receive;
  c->connected_at = c->last_seen = c->tokens_at = pt_now ();
  c->tokens = self->burst;
  g_hash_table_add (self->conns, c);
  if (stream)
    c->ws = pt_ws_new_stream (self->ws_loop, stream, fd, initial, initial_len,
        self->max_message_size, &ws_callbacks, c);
  else
    c->ws = pt_ws_new (self->ws_loop, fd, initial, initial_len, self->max_message_size,
        &ws_callbacks, c);
  pt_ws_set_max_buffered (c->ws, self->max_buffered);
  return c;
}

/* A new connection on @fd, an upgraded WebSocket; @receive reads its messages. */
PtConn *
pt_conn_new (PtServer *self, int fd, const guint8 *initial, gsize initial_len,
    PtReceiveFunc receive)
{
  return conn_new (self, NULL, fd, initial, initial_len, receive);
}

/* The same over TLS: the frames go through @stream, @fd (a duplicate of its
 * socket's) drives epoll (pt_ws_new_stream). */
PtConn *
pt_conn_new_stream (PtServer *self, GIOStream *stream, int fd, const guint8 *initial,
    gsize initial_len, PtReceiveFunc receive)
{
  return conn_new (self, stream, fd, initial, initial_len, receive);
}

/* A client marked slow is no longer routed to: senders get client-not-found
 * rather than a silent drop, until the sweep disconnects it. */
PtConn *
pt_conn_lookup (PtServer *self, const char *client_id)
{
  PtConn *c = client_id ? g_hash_table_lookup (self->clients, client_id) : NULL;
  return c && !c->slow ? c : NULL;
}
