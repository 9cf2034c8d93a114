/* peertree-server — HTTP: GET /status, and the WebSocket upgrade that hands
 * a client's socket to a new PtConn.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-server-private.h"

#include <libsoup/soup.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Status                                                                   */

static void
status_member (const char *peer, const char *parent, guint depth, gpointer user_data)
{
  gpointer *args = user_data;
  JsonArray *members = args[0];
  TreeEntry *t = args[1];
  JsonObject *m = json_object_new ();
  json_object_set_string_member (m, PT_F_ID, peer);
  json_object_set_string_member (m, PT_F_PARENT, parent);
  json_object_set_int_member (m, PT_F_DEPTH, depth);
  JsonArray *children = json_array_new ();
  g_autofree const char **ids = pt_tree_get_children (t->tree, peer);
  for (guint i = 0; ids[i]; i++)
    json_array_add_string_element (children, ids[i]);
  json_object_set_array_member (m, PT_F_CHILDREN, children);
  json_array_add_object_element (members, m);
}

JsonNode *
pt_server_build_status (PtServer *self)
{
  g_return_val_if_fail (PT_IS_SERVER (self), NULL);
  JsonObject *root = json_object_new ();
  JsonArray *trees = json_array_new ();
  g_autoptr (GList) ids = g_hash_table_get_keys (self->trees);
  ids = g_list_sort (ids, (GCompareFunc) strcmp);
  for (GList *l = ids; l; l = l->next) {
    TreeEntry *t = g_hash_table_lookup (self->trees, l->data);
    JsonObject *o = json_object_new ();
    JsonArray *members = json_array_new ();
    gpointer args[2] = { members, t };
    json_object_set_string_member (o, PT_F_ID, t->id);
    json_object_set_int_member (o, PT_F_K, pt_tree_get_k (t->tree));
    json_object_set_int_member (o, PT_F_K1, pt_tree_get_k1 (t->tree));
    json_object_set_string_member (o, PT_F_ROOT, pt_tree_get_root (t->tree));
    json_object_set_int_member (o, PT_F_SIZE, pt_tree_size (t->tree));
    pt_tree_foreach (t->tree, status_member, args);
    json_object_set_array_member (o, PT_F_MEMBERS, members);
    json_array_add_object_element (trees, o);
  }
  json_object_set_int_member (root, PT_F_CLIENTS, g_hash_table_size (self->clients));
  json_object_set_array_member (root, PT_F_TREES, trees);
  /* take: json_node_init_object would add a reference nobody drops */
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, root);
  return node;
}

static void
on_status (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  (void) soup;
  (void) path;
  (void) query;
  PtServer *self = user_data;
  if (soup_server_message_get_method (msg) != SOUP_METHOD_GET &&
      soup_server_message_get_method (msg) != SOUP_METHOD_HEAD) {
    soup_server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
    return;
  }
  g_autoptr (JsonNode) node = pt_server_build_status (self);
  gsize len;
  char *text = json_to_string (node, TRUE);
  len = strlen (text);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, text, len);
}

/* ------------------------------------------------------------------------ */
/* WebSocket upgrade                                                        */

/* The HTTP upgrade is libsoup's; the socket then leaves libsoup for a PtWs
 * on the server's epoll set (pt-ws.h says why). */
static void
on_upgraded (SoupServerMessage *msg, gpointer user_data)
{
  PtServer *self = user_data;
  g_signal_handlers_disconnect_by_func (msg, on_upgraded, user_data);
  GSocket *socket = soup_server_message_get_socket (msg);
  int fd = socket ? dup (g_socket_get_fd (socket)) : -1;
  g_autoptr (GIOStream) stream = soup_server_message_steal_connection (msg);
  if (fd < 0 || !stream) {
    if (fd >= 0)
      close (fd);
    return;
  }
  /* Bytes the client sent right after its request may sit in libsoup's
   * buffer: take them along. */
  g_autoptr (GByteArray) initial = g_byte_array_new ();
  GInputStream *in = g_io_stream_get_input_stream (stream);
  if (G_IS_POLLABLE_INPUT_STREAM (in)) {
    guint8 buf[4096];
    gssize n;
    while ((n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (in), buf,
                sizeof buf, NULL, NULL)) > 0)
      g_byte_array_append (initial, buf, n);
  }
  /* Closing the stream closes libsoup's descriptor (and lets libsoup free
   * its connection objects); ours is a duplicate. */
  g_io_stream_close (stream, NULL, NULL);
  g_clear_object (&stream);

  pt_conn_new (self, fd, initial->data, initial->len, pt_request_receive);
}

static void
on_http (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  PtServer *self = user_data;
  g_autoptr (GError) error = NULL;
  if (!soup_websocket_server_check_handshake (msg, NULL, NULL, NULL, &error)) {
    soup_server_message_set_status (msg, SOUP_STATUS_BAD_REQUEST, NULL);
    soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC,
        "peertree-server: connect with a WebSocket, or GET /status\n", 58);
    return;
  }
  if (g_hash_table_size (self->conns) >= self->max_clients) {
    soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "server full");
    return;
  }
  soup_websocket_server_process_handshake (msg, NULL, NULL, NULL, NULL);
  g_signal_connect (msg, "wrote-informational", G_CALLBACK (on_upgraded), self);
}

/* Serves /status and WebSocket upgrades on @addr. */
gboolean
pt_http_listen (PtServer *self, GSocketAddress *addr, GError **error)
{
  self->soup = soup_server_new ("server-header", "peertree-server", NULL);
  soup_server_add_handler (self->soup, "/status", on_status, self, NULL);
  soup_server_add_handler (self->soup, NULL, on_http, self, NULL);
  if (!soup_server_listen (self->soup, addr, 0, error)) {
    g_clear_object (&self->soup);
    return FALSE;
  }
  return TRUE;
}
