/* libpeertree — the connection to peertree-server and its requests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The bottom of PeerTreeClient: the WebSocket, hello, reconnection with
 * backoff; requests (pending, timeouts, cancellation, reply hooks); reading
 * the server's messages and handing each event to its handler in the table
 * that peertree-client.c gives _peer_tree_client_set_hooks(). Nothing here
 * calls a file above it by name (see peertree-client-private.h).
 */
#include "peertree-client-private.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct {
  PeerTreeClient *self;   /* unowned: pending requests are failed before finalize */
  gint64 id;
  char *type;
  GTask *task;
  GSource *timeout;
  gulong cancel_id;
} Pending;

GParamSpec *pt_props[N_PROPS];
guint pt_signals[N_SIGNALS];

/* What peertree-client.c gave _peer_tree_client_set_hooks(). */
static const PtClientHooks *hooks;
static GHashTable *event_table;  /* event name -> const PtEventHandler* */

/* Called once, from the class_init of PeerTreeClient. */
void
_peer_tree_client_set_hooks (const PtClientHooks *client_hooks)
{
  hooks = client_hooks;
  event_table = g_hash_table_new (g_str_hash, g_str_equal);
  for (gsize i = 0; i < hooks->n_events; i++)
    g_hash_table_insert (event_table, (gpointer) hooks->events[i].name,
        (gpointer) &hooks->events[i]);
}

G_DEFINE_QUARK (peer-tree-error-quark, peer_tree_error)

PeerTreeError
peer_tree_error_from_code (const char *code)
{
  /* the one table lives in the protocol module */
  return (PeerTreeError) pt_error_code_to_peer_tree_error (code);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */

static void
pending_free (Pending *p)
{
  if (p->timeout) {
    g_source_destroy (p->timeout);
    g_source_unref (p->timeout);
  }
  if (p->cancel_id)
    g_cancellable_disconnect (g_task_get_cancellable (p->task), p->cancel_id);
  g_clear_object (&p->task);
  g_free (p->type);
  g_free (p);
}

/* Removes @p from the table and completes its task with @error. */
static void
pending_fail (Pending *p, GError *error /* transfer full */)
{
  g_autoptr (GTask) task = g_object_ref (p->task);
  g_hash_table_steal (p->self->pending, &p->id);
  pending_free (p);
  g_task_return_error (task, error);
}

static gboolean
pending_timed_out (gpointer user_data)
{
  Pending *p = user_data;
  g_source_unref (p->timeout);
  p->timeout = NULL;
  pending_fail (p, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_TIMEOUT,
      "no reply to \"%s\" from %s within %u ms", p->type, p->self->uri, p->self->request_timeout));
  return G_SOURCE_REMOVE;
}

/* Runs @func (a GSourceFunc taking a reference to @self) on the client's
 * context at its next iteration. */
static void
defer_to_context (PeerTreeClient *self, GSourceFunc func)
{
  g_autoptr (GSource) idle = g_idle_source_new ();
  g_source_set_callback (idle, func, g_object_ref (self), NULL);
  g_source_attach (idle, self->context);
}

static gboolean
pending_cancelled_idle (gpointer user_data)
{
  PeerTreeClient *self = user_data;
  /* Collect first: failing a request runs user callbacks. */
  g_autoptr (GPtrArray) done = g_ptr_array_new ();
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init (&it, self->pending);
  while (g_hash_table_iter_next (&it, NULL, &v))
    if (g_cancellable_is_cancelled (g_task_get_cancellable (((Pending *) v)->task)))
      g_ptr_array_add (done, v);
  for (guint i = 0; i < done->len; i++)
    pending_fail (done->pdata[i], g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
        "request cancelled"));
  g_object_unref (self);
  return G_SOURCE_REMOVE;
}

static void
pending_cancelled (GCancellable *cancellable, gpointer user_data)
{
  Pending *p = user_data;
  /* May run in any thread: finish in the client's context. */
  /* Never inline (g_main_context_invoke would run it here, on the owner
   * thread): finishing disconnects from the cancellable, which must not
   * happen inside its own ::cancelled emission. */
  defer_to_context (p->self, pending_cancelled_idle);
}

static void
fail_all_pending (PeerTreeClient *self, const char *why)
{
  g_autoptr (GList) all = g_hash_table_get_values (self->pending);
  for (GList *l = all; l; l = l->next)
    pending_fail (l->data, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED, "%s", why));
}

static void
fail_all_streams (PeerTreeClient *self, const char *why)
{
  g_autoptr (GList) all = g_hash_table_get_values (self->streams);
  for (GList *l = all; l; l = l->next)
    hooks->stream_fail (l->data, why);
}

static void
send_object (PeerTreeClient *self, JsonObject *obj)
{
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), obj);
  g_autofree char *text = json_to_string (node, FALSE);
  soup_websocket_connection_send_text (self->ws, text);
}

/* Sends a request on the current connection, ready or not (hello uses it). */
static void
request_raw (PeerTreeClient *self, const char *type, JsonObject *params, GTask *task)
{
  g_autoptr (JsonObject) msg = params ? json_object_ref (params) : json_object_new ();
  if (!self->ws || soup_websocket_connection_get_state (self->ws) != SOUP_WEBSOCKET_STATE_OPEN) {
    g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED,
        "not connected to %s", self->uri);
    return;
  }
  Pending *p = g_new0 (Pending, 1);
  p->self = self;
  p->id = ++self->next_id;
  p->type = g_strdup (type);
  p->task = g_object_ref (task);
  json_object_set_string_member (msg, PT_F_TYPE, type);
  json_object_set_int_member (msg, PT_F_ID, p->id);
  if (self->request_timeout) {
    p->timeout = g_timeout_source_new (self->request_timeout);
    g_source_set_callback (p->timeout, pending_timed_out, p, NULL);
    g_source_attach (p->timeout, self->context);
  }
  GCancellable *cancellable = g_task_get_cancellable (task);
  g_hash_table_insert (self->pending, &p->id, p);
  if (cancellable)
    p->cancel_id = g_cancellable_connect (cancellable, G_CALLBACK (pending_cancelled), p, NULL);
  send_object (self, msg);
}

/**
 * peer_tree_client_request_async:
 * @self: a #PeerTreeClient
 * @type: the request type, e.g. `"join"`
 * @params: (nullable): the request's fields (besides `type` and `id`, which
 *   the client sets); the client adds to it, so pass an object you own
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the reply
 * @user_data: data for @callback
 *
 * Sends any request of the protocol and waits for its reply, at most
 * #PeerTreeClient:request-timeout milliseconds. The typed methods
 * (peer_tree_client_join_async() and others) are built on this one.
 */
void
peer_tree_client_request_async (PeerTreeClient *self, const char *type, JsonObject *params,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (PEER_TREE_IS_CLIENT (self));
  g_return_if_fail (type != NULL);
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_tree_client_request_async);
  if (!self->ready) {
    g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED,
        "not connected to %s", self->uri);
    return;
  }
  request_raw (self, type, params, task);
}

/**
 * peer_tree_client_request_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the reply's `result` object, or %NULL with
 *   @error set: a #PEER_TREE_ERROR carrying the server's message for an error
 *   reply, %PEER_TREE_ERROR_TIMEOUT, %PEER_TREE_ERROR_CLOSED or
 *   %G_IO_ERROR_CANCELLED.
 */
JsonObject *
peer_tree_client_request_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

typedef struct {
  ReplyHook hook;
  gpointer data;                /* borrowed: @callback's, which runs later */
} HookData;

/* peer_tree_client_request_async() with a hook; @data (a typed method's
 * task, say) goes to both. A reply that was applied is what the request
 * returns, even if its cancellable fired since: the hook sets the same on
 * the typed method's task. */
void
_peer_tree_client_request_with_hook (PeerTreeClient *self, const char *type, JsonObject *params,
    GCancellable *cancellable, ReplyHook hook, GAsyncReadyCallback callback, gpointer data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, data);
  HookData *h = g_new (HookData, 1);
  h->hook = hook;
  h->data = data;
  g_task_set_source_tag (task, _peer_tree_client_request_with_hook);
  g_task_set_task_data (task, h, g_free);
  if (!self->ready) {
    g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED,
        "not connected to %s", self->uri);
    return;
  }
  request_raw (self, type, params, task);
}

static void
handle_reply (PeerTreeClient *self, JsonObject *msg)
{
  JsonNode *id_node = json_object_get_member (msg, PT_F_ID);
  if (!id_node || !JSON_NODE_HOLDS_VALUE (id_node) ||
      json_node_get_value_type (id_node) != G_TYPE_INT64) {
    /* An error about a message the server could not read an id from. */
    const char *text = pt_str (pt_obj (msg, PT_F_ERROR), PT_F_MESSAGE);
    g_autoptr (GError) error = g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_BAD_REQUEST,
        "server rejected a message: %s", text ? text : "?");
    g_signal_emit (self, pt_signals[SIG_ERROR], 0, error);
    return;
  }
  gint64 id = json_node_get_int (id_node);
  Pending *p = g_hash_table_lookup (self->pending, &id);
  if (!p) {
    /* A request sent without waiting (peer_tree_client_emit()) failed, or
     * one that timed out was refused late: never dropped in silence. */
    JsonObject *err = pt_obj (msg, PT_F_ERROR);
    if (err) {
      const char *text = pt_str (err, PT_F_MESSAGE);
      g_autoptr (GError) error = g_error_new (PEER_TREE_ERROR,
          peer_tree_error_from_code (pt_str (err, PT_F_CODE)), "%s",
          text ? text : "request failed");
      g_signal_emit (self, pt_signals[SIG_ERROR], 0, error);
    }
    return;
  }
  g_autoptr (GTask) task = g_object_ref (p->task);
  g_hash_table_steal (self->pending, &id);
  pending_free (p);

  if (pt_bool (msg, PT_F_OK)) {
    JsonObject *res = pt_obj (msg, PT_F_RESULT);
    JsonObject *obj = res ? json_object_ref (res) : json_object_new ();
    if (g_task_get_source_tag (task) == _peer_tree_client_request_with_hook) {
      HookData *h = g_task_get_task_data (task);
      h->hook (self, obj, h->data);
      g_task_set_check_cancellable (task, FALSE);
    }
    g_task_return_pointer (task, obj, (GDestroyNotify) json_object_unref);
  } else {
    JsonObject *err = pt_obj (msg, PT_F_ERROR);
    const char *message = pt_str (err, PT_F_MESSAGE);
    g_task_return_new_error (task, PEER_TREE_ERROR, peer_tree_error_from_code (pt_str (err,
                PT_F_CODE)), "%s", message ? message : "request failed");
  }
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */

static void
handle_binary (PeerTreeClient *self, GBytes *frame)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (frame, &len);
  guint32 id;
  guint8 op;
  if (!pt_frame_header_read (d, len, &id, &op))
    return;
  PeerTreeStream *stream = g_hash_table_lookup (self->streams, GUINT_TO_POINTER (id));
  if (!stream)
    return;
  g_autoptr (GBytes) payload = g_bytes_new_from_bytes (frame, PT_FRAME_HEADER_LEN,
      len - PT_FRAME_HEADER_LEN);
  g_object_ref (stream);
  hooks->stream_receive (stream, op, payload);
  g_object_unref (stream);
}

/* Emits ::event, then hands the event to its handler in the table of
 * peertree-client.c; an event of no handler (a newer server's) is only
 * ::event. */
static void
handle_event (PeerTreeClient *self, JsonObject *ev)
{
  const char *name = pt_str (ev, PT_F_EVENT);
  const char *tree_id = pt_str (ev, PT_F_TREE_ID);
  if (!name)
    return;
  g_signal_emit (self, pt_signals[SIG_EVENT], g_quark_try_string (name), name, ev);
  const PtEventHandler *handler = g_hash_table_lookup (event_table, name);
  if (handler && (tree_id || !handler->needs_tree))
    handler->func (self, tree_id, ev);
}

/* ------------------------------------------------------------------------ */
/* Connection                                                               */

static void schedule_reconnect (PeerTreeClient *self);
static char *current_uri (PeerTreeClient *self);
static void next_uri (PeerTreeClient *self);
static guint n_uris (PeerTreeClient *self);
static void start_attempt (PeerTreeClient *self, GTask *task);

static void
on_ws_message (SoupWebsocketConnection *ws, gint type, GBytes *message, PeerTreeClient *self)
{
  if (type != SOUP_WEBSOCKET_DATA_TEXT) {
    handle_binary (self, message);
    return;
  }
  gsize len;
  const char *text = g_bytes_get_data (message, &len);
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, text, len, NULL))
    return;
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return;
  JsonObject *msg = json_node_get_object (root);
  const char *mtype = pt_str (msg, PT_F_TYPE);
  g_object_ref (self);
  if (g_strcmp0 (mtype, PT_TYPE_REPLY) == 0)
    handle_reply (self, msg);
  else if (g_strcmp0 (mtype, PT_TYPE_EVENT) == 0)
    handle_event (self, msg);
  g_object_unref (self);
}

static void
drop_ws (PeerTreeClient *self)
{
  if (!self->ws)
    return;
  g_signal_handlers_disconnect_by_data (self->ws, self);
  if (soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (self->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  g_clear_object (&self->ws);
}

static void
on_ws_closed (SoupWebsocketConnection *ws, PeerTreeClient *self)
{
  gushort code = soup_websocket_connection_get_close_code (ws);
  const char *reason = soup_websocket_connection_get_close_data (ws);
  g_autofree char *why = g_strdup_printf ("connection to %s closed (code %u%s%s)", self->uri,
      code, reason && *reason ? ": " : "", reason ? reason : "");
  gboolean was_ready = self->ready;

  g_object_ref (self);
  drop_ws (self);
  self->ready = FALSE;
  fail_all_pending (self, why);
  fail_all_streams (self, why);
  if (was_ready) {
    g_object_notify_by_pspec (G_OBJECT (self), pt_props[PROP_CONNECTED]);
    g_signal_emit (self, pt_signals[SIG_DISCONNECTED], 0);
  }
  if (!self->closed_by_user && self->auto_reconnect && self->was_ready) {
    /* that server may be gone: the next one of the service (if several) */
    if (was_ready)
      next_uri (self);
    schedule_reconnect (self);
  }
  g_object_unref (self);
}

/* Ends the current attempt's timeout and cancellation; returns its task. */
static GTask *
attempt_take (PeerTreeClient *self)
{
  GTask *task = g_steal_pointer (&self->connect_task);
  if (self->attempt_timeout) {
    g_source_destroy (self->attempt_timeout);
    g_clear_pointer (&self->attempt_timeout, g_source_unref);
  }
  if (self->user_cancel_id) {
    g_cancellable_disconnect (g_task_get_cancellable (task), self->user_cancel_id);
    self->user_cancel_id = 0;
  }
  g_clear_object (&self->attempt_cancellable);
  return task;
}

static void
attempt_finish (PeerTreeClient *self, GError *error /* transfer full, nullable */)
{
  g_autoptr (GTask) task = attempt_take (self);
  self->uri_tries = 0;
  if (!task) {
    g_clear_error (&error);
    return;
  }
  if (error) {
    drop_ws (self);
    g_task_return_error (task, error);
  } else {
    g_task_return_boolean (task, TRUE);
  }
}

/* The hello reply's iceServers ({"urls": "stun:H:P" | "turn:H:P[?…]",
 * "username", "credential"}) as webrtcbin's URIs: stun://H:P,
 * turn://USER:PASS@H:P[?…]. */
static void
store_ice_servers (PeerTreeClient *self, JsonObject *result)
{
  JsonNode *node = json_object_get_member (result, PT_F_ICE_SERVERS);
  JsonArray *list = node && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
  GPtrArray *b = g_ptr_array_new ();

  for (guint i = 0; list && i < json_array_get_length (list); i++) {
    JsonNode *e = json_array_get_element (list, i);
    JsonObject *o = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;
    const char *url = pt_str (o, PT_F_URLS), *rest, *scheme;
    if (!url)
      continue;
    if (g_str_has_prefix (url, "stun:") || g_str_has_prefix (url, "stuns:")) {
      scheme = g_str_has_prefix (url, "stuns:") ? "stuns" : "stun";
      rest = strchr (url, ':') + 1;
      g_ptr_array_add (b, g_strdup_printf ("%s://%s", scheme,
          g_str_has_prefix (rest, "//") ? rest + 2 : rest));
    } else if (g_str_has_prefix (url, "turn:") || g_str_has_prefix (url, "turns:")) {
      scheme = g_str_has_prefix (url, "turns:") ? "turns" : "turn";
      rest = strchr (url, ':') + 1;
      if (g_str_has_prefix (rest, "//"))
        rest += 2;
      const char *user = pt_str (o, PT_F_USERNAME), *cred = pt_str (o, PT_F_CREDENTIAL);
      g_autofree char *u = user ? g_uri_escape_string (user, NULL, FALSE) : NULL;
      g_autofree char *p = cred ? g_uri_escape_string (cred, NULL, FALSE) : NULL;
      g_ptr_array_add (b, u ? g_strdup_printf ("%s://%s:%s@%s", scheme, u, p ? p : "", rest)
          : g_strdup_printf ("%s://%s", scheme, rest));
    }
  }
  g_strfreev (self->ice_servers);
  self->ice_servers = NULL;
  if (b->len) {
    g_ptr_array_add (b, NULL);
    self->ice_servers = (char **) g_ptr_array_free (b, FALSE);
  } else
    g_ptr_array_free (b, TRUE);
}

static void
on_hello_reply (GObject *source, GAsyncResult *res, gpointer user_data)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (source);
  GError *error = NULL;
  g_autoptr (JsonObject) result = g_task_propagate_pointer (G_TASK (res), &error);
  (void) user_data;
  if (!self->connect_task) { /* attempt abandoned (timeout, cancel, close) */
    g_clear_error (&error);
    return;
  }
  if (!result) {
    attempt_finish (self, error);
    return;
  }
  const char *id = pt_str (result, PT_F_CLIENT_ID);
  if (!id) {
    attempt_finish (self, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_FAILED,
        "%s answered hello without a clientId", self->uri));
    return;
  }
  if (g_strcmp0 (id, self->client_id) != 0) {
    g_free (self->client_id);
    self->client_id = g_strdup (id);
    g_object_notify_by_pspec (G_OBJECT (self), pt_props[PROP_CLIENT_ID]);
  }
  store_ice_servers (self, result);
  gboolean reconnect = self->was_ready;
  self->ready = self->was_ready = TRUE;
  self->backoff = 0;
  attempt_finish (self, NULL);
  g_object_notify_by_pspec (G_OBJECT (self), pt_props[PROP_CONNECTED]);
  if (reconnect) {
    hooks->rejoin (self);
    g_signal_emit (self, pt_signals[SIG_RECONNECTED], 0);
  }
}

/* Signalling messages are small and latency-bound: no Nagle (a message
 * written in two segments would wait for the server's delayed ACK, 40 ms) */
static void
on_network_event (SoupMessage *msg, GSocketClientEvent event, GIOStream *connection,
    gpointer user_data)
{
  (void) msg;
  (void) user_data;
  if (event == G_SOCKET_CLIENT_CONNECTED && G_IS_SOCKET_CONNECTION (connection))
    g_socket_set_option (g_socket_connection_get_socket (G_SOCKET_CONNECTION (connection)),
        IPPROTO_TCP, TCP_NODELAY, 1, NULL);
}

static void
on_ws_connected (GObject *source, GAsyncResult *res, gpointer user_data)
{
  PeerTreeClient *self = user_data;
  GError *error = NULL;
  SoupWebsocketConnection *ws = soup_session_websocket_connect_finish (SOUP_SESSION (source),
      res, &error);
  if (!self->connect_task || !ws) {
    if (ws) {
      soup_websocket_connection_close (ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      g_object_unref (ws);
    }
    g_autofree char *uri = current_uri (self);
    /* an attempt that already ended (timed out: attempt_timed_out moved on
     * to the next server; or closed) does not move on again */
    if (self->connect_task)
      next_uri (self);
    /* several servers: the next one, each tried once per attempt */
    if (self->connect_task && ++self->uri_tries < n_uris (self) &&
        !g_cancellable_is_cancelled (g_task_get_cancellable (self->connect_task))) {
      g_debug ("cannot connect to %s: %s; trying the next server", uri, error->message);
      g_autoptr (GTask) task = attempt_take (self);
      start_attempt (self, task);
      g_clear_error (&error);
      g_object_unref (self);
      return;
    }
    if (self->connect_task)
      attempt_finish (self, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED,
          "cannot connect to peertree server %s: %s%s", uri, error->message,
          g_error_matches (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE) ?
          " (the server's certificate is not trusted: set tls-ca to the PEM file of the CA "
          "that signed it)" : ""));
    g_clear_error (&error);
    g_object_unref (self);
    return;
  }
  self->ws = ws;
  soup_websocket_connection_set_max_incoming_payload_size (ws, 16 << 20);
  /* Rare pings: the server pings silent clients; these only make a dead
   * server show up as a failed write eventually. */
  soup_websocket_connection_set_keepalive_interval (ws, 30);
  g_signal_connect (ws, "message", G_CALLBACK (on_ws_message), self);
  g_signal_connect (ws, "closed", G_CALLBACK (on_ws_closed), self);

  g_autoptr (JsonObject) hello = json_object_new ();
  json_object_set_int_member (hello, PT_F_VERSION, PEER_TREE_PROTOCOL_VERSION);
  if (self->client_id)
    json_object_set_string_member (hello, PT_F_CLIENT_ID, self->client_id);
  json_object_set_string_member (hello, PT_F_SECRET, self->secret);
  if (self->token && *self->token)
    json_object_set_string_member (hello, PT_F_TOKEN, self->token);
  g_autoptr (GTask) task = g_task_new (self, NULL, on_hello_reply, NULL);
  request_raw (self, PT_REQ_HELLO, hello, task);
  g_object_unref (self);
}

static gboolean
attempt_timed_out (gpointer user_data)
{
  PeerTreeClient *self = user_data;
  g_clear_pointer (&self->attempt_timeout, g_source_unref);
  g_cancellable_cancel (self->attempt_cancellable);
  g_autofree char *uri = current_uri (self);
  next_uri (self); /* a reconnection tries the next server (if several) */
  attempt_finish (self, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_TIMEOUT,
      "peertree server %s did not answer within %u ms", uri, self->connect_timeout));
  return G_SOURCE_REMOVE;
}

static gboolean
attempt_cancelled_idle (gpointer user_data)
{
  PeerTreeClient *self = user_data;
  if (self->connect_task && g_task_get_cancellable (self->connect_task) &&
      g_cancellable_is_cancelled (g_task_get_cancellable (self->connect_task))) {
    g_cancellable_cancel (self->attempt_cancellable);
    attempt_finish (self, g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED, "connect cancelled"));
  }
  g_object_unref (self);
  return G_SOURCE_REMOVE;
}

static void
attempt_cancelled (GCancellable *cancellable, PeerTreeClient *self)
{
  defer_to_context (self, attempt_cancelled_idle);
}

/* The URL to connect to: uri is one URL or several servers of one service
 * (--redis), comma-separated; the client moves to the next one when it cannot
 * connect or its connection drops (next_uri). */
static char *
current_uri (PeerTreeClient *self)
{
  g_auto (GStrv) parts = g_strsplit (self->uri ? self->uri : "", ",", 64);
  GPtrArray *urls = g_ptr_array_new ();
  for (guint i = 0; parts[i]; i++)
    if (*g_strstrip (parts[i]))
      g_ptr_array_add (urls, parts[i]);
  char *url = g_strdup (urls->len ? urls->pdata[self->uri_index % urls->len] : "");
  g_ptr_array_unref (urls);
  return url;
}

static guint
n_uris (PeerTreeClient *self)
{
  g_auto (GStrv) parts = g_strsplit (self->uri ? self->uri : "", ",", 64);
  guint n = 0;
  for (guint i = 0; parts[i]; i++)
    n += *g_strstrip (parts[i]) != '\0';
  return n;
}

static void
next_uri (PeerTreeClient *self)
{
  if (self->uri && strchr (self->uri, ','))
    self->uri_index++;
}

static void
start_attempt (PeerTreeClient *self, GTask *task)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *uri = current_uri (self);
  g_autoptr (GUri) parsed = g_uri_parse (uri, SOUP_HTTP_URI_FLAGS, &error);
  const char *scheme = parsed ? g_uri_get_scheme (parsed) : NULL;
  if (!parsed || (g_ascii_strcasecmp (scheme, "ws") != 0 && g_ascii_strcasecmp (scheme, "wss") != 0)) {
    g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_FAILED,
        "\"%s\" is not a ws:// or wss:// URL", uri);
    return;
  }
  /* wss:// with a private CA; the system's CAs otherwise */
  g_autoptr (GTlsDatabase) db = NULL;
  if (self->tls_ca && *self->tls_ca) {
    db = g_tls_file_database_new (self->tls_ca, &error);
    if (!db) {
      g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_FAILED,
          "cannot read tls-ca %s: %s", self->tls_ca, error->message);
      return;
    }
  }
  if (!db)
    db = g_tls_backend_get_default_database (g_tls_backend_get_default ());
  soup_session_set_tls_database (self->session, db);
  self->connect_task = g_object_ref (task);
  self->attempt_cancellable = g_cancellable_new ();
  if (g_task_get_cancellable (task))
    self->user_cancel_id = g_cancellable_connect (g_task_get_cancellable (task),
        G_CALLBACK (attempt_cancelled), self, NULL);
  if (self->connect_timeout) {
    self->attempt_timeout = g_timeout_source_new (self->connect_timeout);
    g_source_set_callback (self->attempt_timeout, attempt_timed_out, self, NULL);
    g_source_attach (self->attempt_timeout, self->context);
  }
  g_autoptr (SoupMessage) msg = soup_message_new_from_uri (SOUP_METHOD_GET, parsed);
  g_signal_connect (msg, "network-event", G_CALLBACK (on_network_event), NULL);
  soup_session_websocket_connect_async (self->session, msg, NULL, NULL, G_PRIORITY_DEFAULT,
      self->attempt_cancellable, on_ws_connected, g_object_ref (self));
}

/**
 * peer_tree_client_connect_async:
 * @self: a #PeerTreeClient
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when connected (hello acknowledged) or failed
 * @user_data: data for @callback
 *
 * Opens the WebSocket, says hello and waits for the server to accept the
 * clientId, at most #PeerTreeClient:connect-timeout milliseconds.
 */
void
peer_tree_client_connect_async (PeerTreeClient *self, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (PEER_TREE_IS_CLIENT (self));
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_tree_client_connect_async);
  if (self->ready || self->connect_task || self->reconnect_source) {
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_PENDING,
        "already connected or connecting");
    return;
  }
  self->closed_by_user = FALSE;
  start_attempt (self, task);
}

/**
 * peer_tree_client_connect_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: %TRUE once connected; %FALSE with @error set (server unreachable,
 *   %PEER_TREE_ERROR_TIMEOUT, %PEER_TREE_ERROR_DUPLICATE_CLIENT_ID, …).
 */
gboolean
peer_tree_client_connect_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
on_reconnect_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (source);
  g_autoptr (GError) error = NULL;
  (void) user_data;
  if (!g_task_propagate_boolean (G_TASK (res), &error) && !self->closed_by_user) {
    g_debug ("reconnect to %s failed: %s", self->uri, error->message);
    schedule_reconnect (self);
  }
}

static gboolean
reconnect_now (gpointer user_data)
{
  PeerTreeClient *self = user_data;
  g_clear_pointer (&self->reconnect_source, g_source_unref);
  g_autoptr (GTask) task = g_task_new (self, NULL, on_reconnect_done, NULL);
  start_attempt (self, task);
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (PeerTreeClient *self)
{
  if (self->reconnect_source || self->connect_task)
    return;
  self->backoff = self->backoff ? MIN (self->backoff * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
  guint delay = self->backoff * (3 + g_random_int_range (0, 3)) / 4; /* ±25% */
  g_debug ("reconnecting to %s in %u ms", self->uri, delay);
  self->reconnect_source = g_timeout_source_new (delay);
  g_source_set_callback (self->reconnect_source, reconnect_now, self, NULL);
  g_source_attach (self->reconnect_source, self->context);
}

/**
 * peer_tree_client_close:
 * @self: a #PeerTreeClient
 *
 * Closes the connection (the server removes the client from its trees, as on
 * a leave) and stops reconnecting. Pending requests fail with
 * %PEER_TREE_ERROR_CLOSED. The client may connect again later.
 */
void
peer_tree_client_close (PeerTreeClient *self)
{
  g_return_if_fail (PEER_TREE_IS_CLIENT (self));
  self->closed_by_user = TRUE;
  if (self->reconnect_source) {
    g_source_destroy (self->reconnect_source);
    g_clear_pointer (&self->reconnect_source, g_source_unref);
  }
  if (self->attempt_cancellable)
    g_cancellable_cancel (self->attempt_cancellable);
  if (self->connect_task)
    attempt_finish (self, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED,
        "client closed"));
  gboolean was_ready = self->ready;
  self->ready = FALSE;
  drop_ws (self);
  fail_all_pending (self, "client closed");
  fail_all_streams (self, "client closed");
  if (was_ready)
    g_object_notify_by_pspec (G_OBJECT (self), pt_props[PROP_CONNECTED]);
}

/* ------------------------------------------------------------------------ */
/* Requests nobody waits for                                                */

void
_peer_tree_client_log_undelivered (GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) result = peer_tree_client_request_finish (PEER_TREE_CLIENT (source), res,
      &error);
  (void) user_data;
  if (!result)
    g_debug ("request not delivered: %s", error->message);
}

/**
 * peer_tree_client_emit:
 * @self: a #PeerTreeClient
 * @target: the clientId to deliver to
 * @event: the event name
 * @args: (nullable): the arguments
 *
 * Sends an event without waiting for anything: the server acknowledges
 * nothing on success (`"noReply": true`), and a failure (unknown target…)
 * is reported by #PeerTreeClient::error. The cheapest way to send many
 * messages; use peer_tree_client_emit_async() to learn each outcome.
 *
 * Returns: %FALSE if not connected (nothing was sent).
 */
gboolean
peer_tree_client_emit (PeerTreeClient *self, const char *target, const char *event,
    JsonArray *args)
{
  g_return_val_if_fail (PEER_TREE_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (target != NULL && event != NULL, FALSE);
  if (!self->ready)
    return FALSE;
  g_autoptr (JsonObject) msg = pt_msg_request_new (PT_REQ_EMIT, ++self->next_id);
  json_object_set_boolean_member (msg, PT_F_NO_REPLY, TRUE);
  json_object_set_string_member (msg, PT_F_TO, target);
  json_object_set_string_member (msg, PT_F_EVENT, event);
  if (args)
    json_object_set_array_member (msg, PT_F_ARGS, json_array_ref (args));
  send_object (self, msg);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Internals for messages and streams                                       */

GMainContext *
_peer_tree_client_get_context (PeerTreeClient *self)
{
  return self->context;
}

/* Answers an event that carried an ackId (no reply is expected for it). */
void
_peer_tree_client_send_reply (PeerTreeClient *self, gint64 ack_id, gboolean ok, JsonNode *value,
    const char *message)
{
  if (!self->ready)
    return;
  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_int_member (params, PT_F_ACK_ID, ack_id);
  json_object_set_boolean_member (params, PT_F_OK, ok);
  if (ok && value)
    json_object_set_member (params, PT_F_VALUE, json_node_copy (value));
  if (!ok) {
    JsonObject *err = json_object_new ();
    json_object_set_string_member (err, PT_F_MESSAGE, message ? message : "refused");
    json_object_set_object_member (params, PT_F_ERROR, err);
  }
  peer_tree_client_request_async (self, PT_REQ_REPLY, params, NULL, _peer_tree_client_log_undelivered,
      NULL);
}

gboolean
_peer_tree_client_send_frame (PeerTreeClient *self, guint32 id, guint8 op, const void *data,
    gsize len)
{
  if (!self->ready || soup_websocket_connection_get_state (self->ws) != SOUP_WEBSOCKET_STATE_OPEN)
    return FALSE;
  g_autofree guint8 *buf = g_malloc (PT_FRAME_HEADER_LEN + len);
  pt_frame_header_write (buf, id, op);
  if (len)
    memcpy (buf + PT_FRAME_HEADER_LEN, data, len);
  soup_websocket_connection_send_binary (self->ws, buf, PT_FRAME_HEADER_LEN + len);
  return TRUE;
}

void
_peer_tree_client_add_stream (PeerTreeClient *self, guint32 id, PeerTreeStream *stream)
{
  g_hash_table_insert (self->streams, GUINT_TO_POINTER (id), stream);
}

void
_peer_tree_client_remove_stream (PeerTreeClient *self, guint32 id)
{
  g_hash_table_remove (self->streams, GUINT_TO_POINTER (id));
}
