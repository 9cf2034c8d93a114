/* peertree-server — clients: hello (registering a clientId, takeover),
 * list-clients, is-connected.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-server-private.h"

#include <string.h>


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

  guint8 hash[32];
  if (secret)
    pt_hash_secret (secret, hash);

  g_autofree char *assigned = NULL;
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
  if (secret) {
    memcpy (c->secret_hash, hash, 32);
    c->has_secret = TRUE;
  }
  g_hash_table_insert (self->clients, c->client_id, c);

  *result = json_object_new ();
  json_object_set_string_member (*result, PT_F_CLIENT_ID, c->client_id);
  json_object_set_int_member (*result, PT_F_VERSION, PT_PROTOCOL_VERSION);
  json_object_set_int_member (*result, PT_F_K, self->k);
  json_object_set_int_member (*result, PT_F_K1, self->k1);
  json_object_set_int_member (*result, PT_F_MAX_MESSAGE_SIZE, self->max_message_size);
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

void
pt_clients_init (PtServer *self)
{
  pt_server_add_handler (self, PT_REQ_HELLO, handle_hello, PT_HANDLER_BEFORE_HELLO);
  pt_server_add_handler (self, PT_REQ_LIST_CLIENTS, handle_list_clients, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_IS_CONNECTED, handle_is_connected, PT_HANDLER_DEFAULT);
}
