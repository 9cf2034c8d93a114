/* peertree-server — clients: hello (registering a clientId, takeover),
 * list-clients, is-connected.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-server-private.h"

#include <string.h>

/* A departed client's clientId, kept for whoever holds its secret. */
typedef struct {
  guint8 secret_hash[32];
  gint64 deadline;
} PtReservation;


/* The ICE servers of a hello reply (NULL: the server has none): the STUN
 * server, and the TURN server with TURN REST credentials for @client_id
 * (coturn's use-auth-secret: username "EXPIRY:CLIENTID", password
 * base64(HMAC-SHA1(secret, username))), valid turn-ttl seconds. */
static JsonArray *
hello_ice_servers (PtServer *self, const char *client_id)
{
  if (!(self->stun && *self->stun) && !(self->turn && *self->turn && self->turn_secret))
    return NULL;
  JsonArray *list = json_array_new ();
  if (self->stun && *self->stun) {
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, PT_F_URLS, self->stun);
    json_array_add_object_element (list, o);
  }
  if (self->turn && *self->turn && self->turn_secret) {
    g_autofree char *user = g_strdup_printf ("%" G_GINT64_FORMAT ":%s",
        g_get_real_time () / G_USEC_PER_SEC + self->turn_ttl, client_id);
    g_autoptr (GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA1, (const guchar *) self->turn_secret,
        strlen (self->turn_secret));
    guint8 digest[20];
    gsize len = sizeof digest;
    g_hmac_update (hmac, (const guchar *) user, -1);
    g_hmac_get_digest (hmac, digest, &len);
    g_autofree char *password = g_base64_encode (digest, len);
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, PT_F_URLS, self->turn);
    json_object_set_string_member (o, PT_F_USERNAME, user);
    json_object_set_string_member (o, PT_F_CREDENTIAL, password);
    json_array_add_object_element (list, o);
  }
  return list;
}

static gboolean
handle_hello (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *client_id, *secret;
  gint64 version;

  if (c->client_id)
    return pt_fault_set (f, PT_ERR_ALREADY_HELLO, "hello was already received on this connection");
  if (!pt_get_uint (msg, PT_F_VERSION, TRUE, G_MAXINT, &version, f) ||
      !pt_get_id (msg, PT_F_CLIENT_ID, FALSE, &client_id, f) ||
      !pt_get_string (msg, PT_F_SECRET, FALSE, &secret, f))
    return FALSE;
  if (version != PT_PROTOCOL_VERSION)
    return pt_fault_set (f, PT_ERR_UNSUPPORTED_VERSION, "protocol version %" G_GINT64_FORMAT
        " is not supported; this server speaks version %d", version, PT_PROTOCOL_VERSION);
  if (secret && (strlen (secret) == 0 || strlen (secret) > PT_SECRET_MAX_LEN))
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "secret must be 1 to %d bytes", PT_SECRET_MAX_LEN);

  /* With an auth key: a token, which binds the clientId (sub). */
  g_autoptr (PtGrants) grants = NULL;
  const char *token = NULL;
  if (self->auth_key) {
    g_autoptr (GError) error = NULL;
    if (!pt_get_string (msg, PT_F_TOKEN, FALSE, &token, f))
      return FALSE;
    if (!token) {
      pt_limits_log_refusal (self, c->ip, "hello refused: no token");
      return pt_fault_set (f, PT_ERR_UNAUTHORIZED, "this server needs a token in hello");
    }
    grants = pt_auth_verify (self->auth_key, token, g_get_real_time () / G_USEC_PER_SEC, &error);
    if (!grants) {
      pt_limits_log_refusal (self, c->ip, "hello refused: %s", error->message);
      return pt_fault_set (f, PT_ERR_UNAUTHORIZED, "%s", error->message);
    }
    if (client_id && strcmp (client_id, grants->sub) != 0) {
      pt_limits_log_refusal (self, c->ip, "hello refused: clientId \"%s\" with a token for \"%s\"",
          client_id, grants->sub);
      return pt_fault_set (f, PT_ERR_FORBIDDEN, "the token is for clientId \"%s\", not \"%s\"",
          grants->sub, client_id);
    }
    client_id = grants->sub;
  }

  guint8 hash[32];
  if (secret)
    pt_hash_secret (secret, hash);

  g_autofree char *assigned = NULL;
  PtReservation *reserved = client_id ? g_hash_table_lookup (self->reserved, client_id) : NULL;
  if (reserved && reserved->deadline > pt_now () &&
      (!secret || !pt_secret_equal (hash, reserved->secret_hash)))
    return pt_fault_set (f, PT_ERR_DUPLICATE_CLIENT_ID, "clientId \"%s\" is reserved for the "
        "client that used it (with its secret) for %u s after it left", client_id,
        self->source_grace);
  if (client_id) {
    PtConn *old = g_hash_table_lookup (self->clients, client_id);
    if (old) {
      if (!self->allow_takeover || !secret || !old->has_secret ||
          !pt_secret_equal (hash, old->secret_hash))
        return pt_fault_set (f, PT_ERR_DUPLICATE_CLIENT_ID,
            "clientId \"%s\" is already connected", client_id);
      g_debug ("client %s taken over by a new connection", client_id);
      pt_conn_gone (old, PT_CLOSE_TAKEN_OVER, "clientId taken over by a new connection");
    }
  } else {
    do {
      g_free (assigned);
      assigned = pt_random_id ("c-");
    } while (g_hash_table_contains (self->clients, assigned));
    client_id = assigned;
  }

  c->client_id = g_strdup (client_id);
  c->grants = g_steal_pointer (&grants);
  if (secret) {
    memcpy (c->secret_hash, hash, 32);
    c->has_secret = TRUE;
  }
  g_hash_table_insert (self->clients, c->client_id, c);
  g_hash_table_remove (self->reserved, c->client_id);
  pt_cluster_client_registered (c, token);

  *result = json_object_new ();
  json_object_set_string_member (*result, PT_F_CLIENT_ID, c->client_id);
  json_object_set_int_member (*result, PT_F_VERSION, PT_PROTOCOL_VERSION);
  json_object_set_int_member (*result, PT_F_K, self->k);
  json_object_set_int_member (*result, PT_F_K1, self->k1);
  json_object_set_int_member (*result, PT_F_MAX_MESSAGE_SIZE, self->max_message_size);
  JsonArray *ice = hello_ice_servers (self, c->client_id);
  if (ice)
    json_object_set_array_member (*result, PT_F_ICE_SERVERS, ice);
  return TRUE;
}

static gboolean
handle_list_clients (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  const char *prefix;
  gint64 limit;
  if (!pt_get_string (msg, PT_F_PREFIX, FALSE, &prefix, f) ||
      !pt_get_uint (msg, PT_F_LIMIT, FALSE, PT_MAX_LIST, &limit, f))
    return FALSE;
  if (!limit)
    limit = PT_MAX_LIST;
  if (pt_cluster_list_clients (req, prefix, limit))
    return TRUE;
  JsonArray *list = json_array_new ();
  gboolean more = FALSE;
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, c->server->clients);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    if (prefix && !g_str_has_prefix (key, prefix))
      continue;
    if (json_array_get_length (list) == (guint) limit) {
      more = TRUE;
      break;
    }
    json_array_add_string_element (list, key);
  }
  *result = json_object_new ();
  json_object_set_array_member (*result, PT_F_CLIENTS, list);
  json_object_set_boolean_member (*result, PT_F_MORE, more);
  return TRUE;
}

static gboolean
handle_is_connected (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  const char *id;
  if (!pt_get_id (msg, PT_F_CLIENT_ID, TRUE, &id, f))
    return FALSE;
  *result = json_object_new ();
  json_object_set_boolean_member (*result, PT_F_CONNECTED, pt_conn_lookup (c->server, id) != NULL);
  return TRUE;
}

/* A client with a secret left: its clientId stays its own for source-grace
 * seconds, so that nobody else can speak under it (to its tree's members,
 * its correspondents) before it comes back. */
static void
clients_conn_gone (PtConn *c)
{
  PtServer *self = c->server;
  if (!c->has_secret || !self->source_grace ||
      g_hash_table_lookup (self->clients, c->client_id) != c)
    return;
  PtReservation *r = g_new0 (PtReservation, 1);
  memcpy (r->secret_hash, c->secret_hash, 32);
  r->deadline = pt_now () + (gint64) self->source_grace * G_USEC_PER_SEC;
  g_hash_table_replace (self->reserved, g_strdup (c->client_id), r);
}

static void
clients_sweep (PtServer *self, gint64 now)
{
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->reserved);
  while (g_hash_table_iter_next (&it, NULL, &value))
    if (((PtReservation *) value)->deadline <= now)
      g_hash_table_iter_remove (&it);
}

static void
clients_reset (PtServer *self)
{
  g_hash_table_remove_all (self->reserved);
}

static void
clients_finalize (PtServer *self)
{
  g_hash_table_unref (self->reserved);
}

void
pt_clients_init (PtServer *self)
{
  static const PtHooks hooks = {
    .conn_gone = clients_conn_gone,
    .sweep = clients_sweep,
    .reset = clients_reset,
    .finalize = clients_finalize,
  };
  self->reserved = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  pt_server_add_hooks (self, &hooks);
  pt_server_add_handler (self, PT_REQ_HELLO, handle_hello, PT_HANDLER_BEFORE_HELLO);
  pt_server_add_handler (self, PT_REQ_LIST_CLIENTS, handle_list_clients, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_IS_CONNECTED, handle_is_connected, PT_HANDLER_DEFAULT);
}
