/* libpeertree — client of peertree-server
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peertree-client-private.h"

#include <libsoup/soup.h>
#include <string.h>

/**
 * SECTION:peertree-client
 * @title: PeerTreeClient
 * @short_description: signalling client of peertree-server
 *
 * A #PeerTreeClient holds one WebSocket connection to a peertree-server,
 * speaks its JSON protocol (docs/protocol.md) and turns the server's events
 * into GObject signals.
 *
 * The client belongs to the thread-default #GMainContext of the thread that
 * created it: every signal is emitted and every async callback is invoked
 * there, and its methods must be called from that thread.
 *
 * When the connection drops after it was established, the client emits
 * #PeerTreeClient::disconnected, reconnects with exponential backoff (100 ms
 * doubling to 5 s, with jitter) under the same clientId and secret, and emits
 * #PeerTreeClient::reconnected. On reconnection it re-registers every tree
 * position it holds (the `rejoin` request): a source reclaims its tree with
 * its secret, a viewer reports its parent. After a server restart the server
 * rebuilds its trees from these reports while the media links keep running;
 * a viewer that cannot keep its parent gets #PeerTreeClient::upstream-changed,
 * one whose tree is gone gets #PeerTreeClient::tree-closed.
 */

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct _PeerTreeClient {
  GObject parent_instance;

  char *uri;
  char *client_id;
  char *secret;
  guint connect_timeout;  /* ms */
  guint request_timeout;  /* ms */
  gboolean auto_reconnect;

  GMainContext *context;
  SoupSession *session;
  SoupWebsocketConnection *ws;
  gboolean ready;         /* hello acknowledged */
  gboolean was_ready;     /* ready at least once: reconnect on loss */
  gboolean closed_by_user;

  GTask *connect_task;        /* the attempt in progress (user's or a reconnect) */
  GCancellable *attempt_cancellable;
  GSource *attempt_timeout;
  gulong user_cancel_id;

  GSource *reconnect_source;
  guint backoff;

  gint64 next_id;
  GHashTable *pending;    /* gint64* id -> Pending* */
  GHashTable *streams;    /* guint32 id -> PeerTreeStream* (unowned; streams unregister) */
  GHashTable *memberships; /* tree id -> Membership*: re-registered after a reconnection */
};

typedef struct {
  gboolean source;
  char *parent;           /* members: the current parent */
  guint k, k1;            /* sources */
} Membership;

static void
membership_free (Membership *m)
{
  g_free (m->parent);
  g_free (m);
}

static void
membership_set (PeerTreeClient *self, const char *tree_id, gboolean source, const char *parent,
    guint k, guint k1)
{
  Membership *m = g_new0 (Membership, 1);
  m->source = source;
  m->parent = g_strdup (parent);
  m->k = k;
  m->k1 = k1;
  g_hash_table_insert (self->memberships, g_strdup (tree_id), m);
}

static void
membership_set_parent (PeerTreeClient *self, const char *tree_id, const char *parent)
{
  Membership *m = g_hash_table_lookup (self->memberships, tree_id);
  if (m && !m->source) {
    g_free (m->parent);
    m->parent = g_strdup (parent);
  }
}

typedef struct {
  PeerTreeClient *self;   /* unowned: pending requests are failed before finalize */
  gint64 id;
  char *type;
  GTask *task;
  GSource *timeout;
  gulong cancel_id;
} Pending;

enum {
  PROP_0,
  PROP_URI,
  PROP_CLIENT_ID,
  PROP_SECRET,
  PROP_CONNECT_TIMEOUT,
  PROP_REQUEST_TIMEOUT,
  PROP_AUTO_RECONNECT,
  PROP_CONNECTED,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

enum {
  SIG_TREE_JOINED,
  SIG_UPSTREAM_CHANGED,
  SIG_DOWNSTREAM_ADDED,
  SIG_DOWNSTREAM_REMOVED,
  SIG_REMOTE_SDP,
  SIG_REMOTE_ICE,
  SIG_TREE_CLOSED,
  SIG_EVENT,
  SIG_ERROR,
  SIG_DISCONNECTED,
  SIG_RECONNECTED,
  SIG_MESSAGE,
  SIG_TARGET_REQUEST,
  SIG_TARGET_DISCONNECTED,
  SIG_STREAM_REQUEST,
  SIG_SERVICE_CALL,
  SIG_TOPIC,
  SIG_TOPIC_DESTROYED,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (PeerTreeClient, peer_tree_client, G_TYPE_OBJECT)

G_DEFINE_QUARK (peer-tree-error-quark, peer_tree_error)

static const struct {
  const char *code;
  PeerTreeError error;
} error_codes[] = {
  { "bad-json", PEER_TREE_ERROR_BAD_REQUEST },
  { "bad-request", PEER_TREE_ERROR_BAD_REQUEST },
  { "unknown-type", PEER_TREE_ERROR_BAD_REQUEST },
  { "hello-required", PEER_TREE_ERROR_BAD_REQUEST },
  { "already-hello", PEER_TREE_ERROR_BAD_REQUEST },
  { "unsupported-version", PEER_TREE_ERROR_BAD_REQUEST },
  { "duplicate-client-id", PEER_TREE_ERROR_DUPLICATE_CLIENT_ID },
  { "invalid-id", PEER_TREE_ERROR_INVALID_ID },
  { "tree-not-found", PEER_TREE_ERROR_TREE_NOT_FOUND },
  { "tree-exists", PEER_TREE_ERROR_TREE_EXISTS },
  { "not-member", PEER_TREE_ERROR_NOT_MEMBER },
  { "is-root", PEER_TREE_ERROR_IS_ROOT },
  { "relay-refused", PEER_TREE_ERROR_RELAY_REFUSED },
  { "limit", PEER_TREE_ERROR_LIMIT },
  { "timeout", PEER_TREE_ERROR_TIMEOUT },
  { "client-not-found", PEER_TREE_ERROR_NOT_FOUND },
  { "not-found", PEER_TREE_ERROR_NOT_FOUND },
  { "service-not-found", PEER_TREE_ERROR_NOT_FOUND },
  { "method-not-found", PEER_TREE_ERROR_NOT_FOUND },
  { "topic-not-found", PEER_TREE_ERROR_NOT_FOUND },
  { "remote-error", PEER_TREE_ERROR_REMOTE },
  { "service-error", PEER_TREE_ERROR_REMOTE },
  { "service-exists", PEER_TREE_ERROR_EXISTS },
  { "topic-exists", PEER_TREE_ERROR_EXISTS },
  { "not-provider", PEER_TREE_ERROR_NOT_PERMITTED },
  { "client-disconnected", PEER_TREE_ERROR_DISCONNECTED },
};

PeerTreeError
peer_tree_error_from_code (const char *code)
{
  for (gsize i = 0; code && i < G_N_ELEMENTS (error_codes); i++)
    if (strcmp (error_codes[i].code, code) == 0)
      return error_codes[i].error;
  return PEER_TREE_ERROR_FAILED;
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
    _peer_tree_stream_fail (l->data, why);
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
  json_object_set_string_member (msg, "type", type);
  json_object_set_int_member (msg, "id", p->id);
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

/* A hook runs synchronously when a request's successful reply is read, before
 * the client handles anything the server sent after it. GTask may complete
 * a task in a later main loop iteration (always, when the reply is read in
 * the same iteration as the request was made), and by then the events that
 * followed the reply (a new child right after create, a parent's offer right
 * after join) would already have been emitted. So what a reply changes in the
 * client (its memberships) and the signals it causes happen in the hook, in
 * the server's order; the typed methods' callbacks only hand the outcome on.
 * @outer is the typed method's task, which the hook may give task data. */
typedef void (*ReplyHook) (PeerTreeClient *self, JsonObject *result, gpointer data);

typedef struct {
  ReplyHook hook;
  gpointer data;                /* borrowed: @callback's, which runs later */
} HookData;

/* peer_tree_client_request_async() with a hook; @data (a typed method's
 * task, say) goes to both. A reply that was applied is what the request
 * returns, even if its cancellable fired since: the hook sets the same on
 * the typed method's task. */
static void
request_with_hook (PeerTreeClient *self, const char *type, JsonObject *params,
    GCancellable *cancellable, ReplyHook hook, GAsyncReadyCallback callback, gpointer data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, data);
  HookData *h = g_new (HookData, 1);
  h->hook = hook;
  h->data = data;
  g_task_set_source_tag (task, request_with_hook);
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
  JsonNode *id_node = json_object_get_member (msg, "id");
  if (!id_node || !JSON_NODE_HOLDS_VALUE (id_node) ||
      json_node_get_value_type (id_node) != G_TYPE_INT64) {
    /* An error about a message the server could not read an id from. */
    JsonObject *err = json_object_get_object_member (msg, "error");
    g_autoptr (GError) error = g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_BAD_REQUEST,
        "server rejected a message: %s",
        err && json_object_has_member (err, "message") ?
            json_object_get_string_member_with_default (err, "message", "?") : "?");
    g_signal_emit (self, signals[SIG_ERROR], 0, error);
    return;
  }
  gint64 id = json_node_get_int (id_node);
  Pending *p = g_hash_table_lookup (self->pending, &id);
  if (!p) {
    /* A request sent without waiting (peer_tree_client_emit()) failed, or
     * one that timed out was refused late: never dropped in silence. */
    JsonNode *err_node = json_object_get_member (msg, "error");
    if (err_node && JSON_NODE_HOLDS_OBJECT (err_node)) {
      JsonObject *err = json_node_get_object (err_node);
      g_autoptr (GError) error = g_error_new (PEER_TREE_ERROR,
          peer_tree_error_from_code (json_object_get_string_member_with_default (err, "code", "")),
          "%s", json_object_get_string_member_with_default (err, "message", "request failed"));
      g_signal_emit (self, signals[SIG_ERROR], 0, error);
    }
    return;
  }
  g_autoptr (GTask) task = g_object_ref (p->task);
  g_hash_table_steal (self->pending, &id);
  pending_free (p);

  if (json_object_get_boolean_member_with_default (msg, "ok", FALSE)) {
    JsonNode *res = json_object_get_member (msg, "result");
    JsonObject *obj = res && JSON_NODE_HOLDS_OBJECT (res) ?
        json_object_ref (json_node_get_object (res)) : json_object_new ();
    if (g_task_get_source_tag (task) == request_with_hook) {
      HookData *h = g_task_get_task_data (task);
      h->hook (self, obj, h->data);
      g_task_set_check_cancellable (task, FALSE);
    }
    g_task_return_pointer (task, obj, (GDestroyNotify) json_object_unref);
  } else {
    JsonNode *err_node = json_object_get_member (msg, "error");
    JsonObject *err = err_node && JSON_NODE_HOLDS_OBJECT (err_node) ?
        json_node_get_object (err_node) : NULL;
    const char *code = err ? json_object_get_string_member_with_default (err, "code", "") : "";
    const char *message = err ?
        json_object_get_string_member_with_default (err, "message", "request failed") :
        "request failed";
    g_task_return_new_error (task, PEER_TREE_ERROR, peer_tree_error_from_code (code), "%s",
        message);
  }
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */

static const char *
str_member (JsonObject *obj, const char *name)
{
  JsonNode *n = json_object_get_member (obj, name);
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

static gboolean
uint_member (JsonObject *obj, const char *name, guint *out)
{
  JsonNode *n = json_object_get_member (obj, name);
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  gint64 v = json_node_get_int (n);
  if (v < 0 || v > G_MAXUINT)
    return FALSE;
  *out = (guint) v;
  return TRUE;
}

static void
handle_signal_event (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  const char *from = str_member (ev, "from");
  JsonNode *data_node = json_object_get_member (ev, "data");
  if (!from || !data_node || !JSON_NODE_HOLDS_OBJECT (data_node))
    return;
  JsonObject *data = json_node_get_object (data_node);
  JsonNode *sdp = json_object_get_member (data, "sdp");
  JsonNode *ice = json_object_get_member (data, "ice");
  if (sdp && JSON_NODE_HOLDS_OBJECT (sdp)) {
    const char *type = str_member (json_node_get_object (sdp), "type");
    const char *text = str_member (json_node_get_object (sdp), "sdp");
    if (type && text)
      g_signal_emit (self, signals[SIG_REMOTE_SDP], 0, tree_id, from, type, text);
  } else if (ice && JSON_NODE_HOLDS_OBJECT (ice)) {
    guint mline;
    const char *cand = str_member (json_node_get_object (ice), "candidate");
    if (cand && uint_member (json_node_get_object (ice), "mline", &mline))
      g_signal_emit (self, signals[SIG_REMOTE_ICE], 0, tree_id, from, mline, cand);
  }
}

/* Events of the messaging APIs; TRUE if @name is one of them. */
static gboolean
handle_messaging_event (PeerTreeClient *self, const char *name, JsonObject *ev)
{
  static const struct {
    const char *name;
    PtMessageKind kind;
    guint signal;
    const char *detail_field;
  } kinds[] = {
    { "message", PT_MESSAGE_EVENT, SIG_MESSAGE, "name" },
    { "target-request", PT_MESSAGE_TARGET_REQUEST, SIG_TARGET_REQUEST, NULL },
    { "stream-request", PT_MESSAGE_STREAM_REQUEST, SIG_STREAM_REQUEST, "channel" },
    { "service-call", PT_MESSAGE_SERVICE_CALL, SIG_SERVICE_CALL, "service" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (kinds); i++) {
    if (strcmp (name, kinds[i].name) != 0)
      continue;
    g_autoptr (PeerTreeMessage) msg = _peer_tree_message_new (self, kinds[i].kind, ev);
    if (!msg)
      return TRUE;
    const char *detail = kinds[i].detail_field ? str_member (ev, kinds[i].detail_field) : NULL;
    g_signal_emit (self, signals[kinds[i].signal], detail ? g_quark_try_string (detail) : 0, msg);
    /* Unanswered and unreferenced: finalizing it answers with the default. */
    return TRUE;
  }
  if (strcmp (name, "target-disconnected") == 0) {
    const char *id = str_member (ev, "clientId");
    if (id)
      g_signal_emit (self, signals[SIG_TARGET_DISCONNECTED], 0, id);
    return TRUE;
  }
  if (strcmp (name, "topic") == 0 || strcmp (name, "topic-destroyed") == 0) {
    const char *service = str_member (ev, "service"), *topic = str_member (ev, "topic");
    if (!service || !topic)
      return TRUE;
    if (name[5] == '-') {
      g_signal_emit (self, signals[SIG_TOPIC_DESTROYED], 0, service, topic);
    } else {
      JsonNode *args = json_object_get_member (ev, "args");
      g_autoptr (JsonArray) array = args && JSON_NODE_HOLDS_ARRAY (args) ?
          json_array_ref (json_node_get_array (args)) : json_array_new ();
      g_signal_emit (self, signals[SIG_TOPIC], g_quark_try_string (topic), service, topic, array);
    }
    return TRUE;
  }
  return FALSE;
}

static void
handle_binary (PeerTreeClient *self, GBytes *frame)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (frame, &len);
  if (len < 5)
    return;
  guint32 id = (guint32) d[0] << 24 | (guint32) d[1] << 16 | (guint32) d[2] << 8 | d[3];
  PeerTreeStream *stream = g_hash_table_lookup (self->streams, GUINT_TO_POINTER (id));
  if (!stream)
    return;
  g_autoptr (GBytes) payload = g_bytes_new_from_bytes (frame, 5, len - 5);
  g_object_ref (stream);
  _peer_tree_stream_receive (stream, d[4], payload);
  g_object_unref (stream);
}

static void
handle_event (PeerTreeClient *self, JsonObject *ev)
{
  const char *name = str_member (ev, "event");
  const char *tree_id = str_member (ev, "treeId");
  if (!name)
    return;
  g_signal_emit (self, signals[SIG_EVENT], g_quark_try_string (name), name, ev);
  if (handle_messaging_event (self, name, ev) || !tree_id)
    return;

  if (strcmp (name, "signal") == 0) {
    handle_signal_event (self, tree_id, ev);
  } else if (strcmp (name, "upstream") == 0) {
    const char *parent = str_member (ev, "parent");
    guint depth;
    if (parent && uint_member (ev, "depth", &depth)) {
      membership_set_parent (self, tree_id, parent);
      g_signal_emit (self, signals[SIG_UPSTREAM_CHANGED], 0, tree_id, parent, depth);
    }
  } else if (strcmp (name, "placed") == 0) {
    /* A position re-registered after a restart was confirmed as it was. */
    const char *parent = str_member (ev, "parent");
    if (parent)
      membership_set_parent (self, tree_id, parent);
  } else if (strcmp (name, "downstream-added") == 0 || strcmp (name, "downstream-removed") == 0) {
    const char *child = str_member (ev, "child");
    if (child)
      g_signal_emit (self, signals[name[11] == 'a' ? SIG_DOWNSTREAM_ADDED : SIG_DOWNSTREAM_REMOVED],
          0, tree_id, child);
  } else if (strcmp (name, "tree-closed") == 0) {
    const char *reason = str_member (ev, "reason");
    g_hash_table_remove (self->memberships, tree_id);
    g_signal_emit (self, signals[SIG_TREE_CLOSED], 0, tree_id, reason ? reason : "closed");
  }
}

/* ------------------------------------------------------------------------ */
/* Connection                                                               */

static void schedule_reconnect (PeerTreeClient *self);
static void rejoin_all (PeerTreeClient *self);
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
  const char *mtype = str_member (msg, "type");
  g_object_ref (self);
  if (g_strcmp0 (mtype, "reply") == 0)
    handle_reply (self, msg);
  else if (g_strcmp0 (mtype, "event") == 0)
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
    g_object_notify_by_pspec (G_OBJECT (self), props[PROP_CONNECTED]);
    g_signal_emit (self, signals[SIG_DISCONNECTED], 0);
  }
  if (!self->closed_by_user && self->auto_reconnect && self->was_ready)
    schedule_reconnect (self);
  g_object_unref (self);
}

static void
attempt_finish (PeerTreeClient *self, GError *error /* transfer full, nullable */)
{
  g_autoptr (GTask) task = g_steal_pointer (&self->connect_task);
  if (self->attempt_timeout) {
    g_source_destroy (self->attempt_timeout);
    g_clear_pointer (&self->attempt_timeout, g_source_unref);
  }
  if (self->user_cancel_id) {
    g_cancellable_disconnect (g_task_get_cancellable (task), self->user_cancel_id);
    self->user_cancel_id = 0;
  }
  g_clear_object (&self->attempt_cancellable);
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

/* A rejoin's placement, when the server put us elsewhere (emitted as the
 * reply is read, like join's). */
static void
rejoin_hook (PeerTreeClient *self, JsonObject *result, gpointer data)
{
  const char *tree_id = data;
  Membership *m = g_hash_table_lookup (self->memberships, tree_id);
  const char *parent = str_member (result, "parent");
  guint depth;
  if (m && !m->source && parent && g_strcmp0 (parent, m->parent) != 0 &&
      uint_member (result, "depth", &depth)) {
    membership_set_parent (self, tree_id, parent);
    g_signal_emit (self, signals[SIG_UPSTREAM_CHANGED], 0, tree_id, parent, depth);
  }
}

static void
on_rejoin_reply (GObject *source, GAsyncResult *res, gpointer user_data)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (source);
  g_autofree char *tree_id = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) result = peer_tree_client_request_finish (self, res, &error);
  if (result || !g_hash_table_lookup (self->memberships, tree_id))
    return;
  if (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED))
    return; /* dropped again: the next reconnection retries */
  g_autofree char *reason = g_strdup_printf ("could not re-register: %s", error->message);
  g_hash_table_remove (self->memberships, tree_id);
  g_signal_emit (self, signals[SIG_TREE_CLOSED], 0, tree_id, reason);
}

/* After a reconnection (the server may have restarted and forgotten
 * everything): reports each tree position, so the server can rebuild its
 * trees from what their members say, while the media links keep running. */
static void
rejoin_all (PeerTreeClient *self)
{
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, self->memberships);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    Membership *m = value;
    g_autoptr (JsonObject) params = json_object_new ();
    json_object_set_string_member (params, "treeId", key);
    if (m->source) {
      json_object_set_boolean_member (params, "source", TRUE);
      json_object_set_int_member (params, "k", m->k);
      json_object_set_int_member (params, "k1", m->k1);
      json_object_set_string_member (params, "secret", self->secret);
    } else {
      json_object_set_string_member (params, "parent", m->parent);
    }
    request_with_hook (self, "rejoin", params, NULL, rejoin_hook, on_rejoin_reply,
        g_strdup (key));
  }
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
  const char *id = str_member (result, "clientId");
  if (!id) {
    attempt_finish (self, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_FAILED,
        "%s answered hello without a clientId", self->uri));
    return;
  }
  if (g_strcmp0 (id, self->client_id) != 0) {
    g_free (self->client_id);
    self->client_id = g_strdup (id);
    g_object_notify_by_pspec (G_OBJECT (self), props[PROP_CLIENT_ID]);
  }
  gboolean reconnect = self->was_ready;
  self->ready = self->was_ready = TRUE;
  self->backoff = 0;
  attempt_finish (self, NULL);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_CONNECTED]);
  if (reconnect) {
    rejoin_all (self);
    g_signal_emit (self, signals[SIG_RECONNECTED], 0);
  }
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
    if (self->connect_task)
      attempt_finish (self, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED,
          "cannot connect to peertree server %s: %s", self->uri, error->message));
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
  json_object_set_int_member (hello, "version", PEER_TREE_PROTOCOL_VERSION);
  if (self->client_id)
    json_object_set_string_member (hello, "clientId", self->client_id);
  json_object_set_string_member (hello, "secret", self->secret);
  g_autoptr (GTask) task = g_task_new (self, NULL, on_hello_reply, NULL);
  request_raw (self, "hello", hello, task);
  g_object_unref (self);
}

static gboolean
attempt_timed_out (gpointer user_data)
{
  PeerTreeClient *self = user_data;
  g_clear_pointer (&self->attempt_timeout, g_source_unref);
  g_cancellable_cancel (self->attempt_cancellable);
  attempt_finish (self, g_error_new (PEER_TREE_ERROR, PEER_TREE_ERROR_TIMEOUT,
      "peertree server %s did not answer within %u ms", self->uri, self->connect_timeout));
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

static void
start_attempt (PeerTreeClient *self, GTask *task)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GUri) parsed = g_uri_parse (self->uri, SOUP_HTTP_URI_FLAGS, &error);
  const char *scheme = parsed ? g_uri_get_scheme (parsed) : NULL;
  if (!parsed || (g_ascii_strcasecmp (scheme, "ws") != 0 && g_ascii_strcasecmp (scheme, "wss") != 0)) {
    g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_FAILED,
        "\"%s\" is not a ws:// or wss:// URL", self->uri);
    return;
  }
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
    g_object_notify_by_pspec (G_OBJECT (self), props[PROP_CONNECTED]);
}

/* ------------------------------------------------------------------------ */
/* Tree operations                                                          */

typedef struct {
  char *tree_id;
  char *parent;
  guint depth;
} Placement;

static void
placement_free (Placement *p)
{
  g_free (p->tree_id);
  g_free (p->parent);
  g_free (p);
}

static void
create_hook (PeerTreeClient *self, JsonObject *result, gpointer data)
{
  GTask *outer = data;
  const char *tree_id = str_member (result, "treeId");
  guint k = 0, k1 = 0;
  if (!tree_id)
    return;                     /* on_create_reply fails the task */
  uint_member (result, "k", &k);
  uint_member (result, "k1", &k1);
  membership_set (self, tree_id, TRUE, NULL, k, k1);
  g_task_set_task_data (outer, g_strdup (tree_id), g_free);
  g_task_set_check_cancellable (outer, FALSE);
  g_signal_emit (self, signals[SIG_TREE_JOINED], 0, tree_id, 0u);
}

static void
on_create_reply (GObject *source, GAsyncResult *res, gpointer user_data)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (source);
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  g_autoptr (JsonObject) result = peer_tree_client_request_finish (self, res, &error);
  const char *tree_id = g_task_get_task_data (task);
  if (!result)
    g_task_return_error (task, error);
  else if (!tree_id)
    g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_FAILED,
        "server answered create without a tree id");
  else
    g_task_return_pointer (task, g_strdup (tree_id), g_free);
}

/**
 * peer_tree_client_create_async:
 * @self: a #PeerTreeClient
 * @tree_id: (nullable): the id wanted, or %NULL to let the server choose
 * @k: children per viewer, 0 for the server's default (at most the server's)
 * @k1: children of the source, 0 for the server's default (at most the server's)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Creates a tree whose source (root) is this client. On success
 * #PeerTreeClient::tree-joined is emitted with depth 0, as soon as the reply
 * is read and before any later event of the server (a
 * #PeerTreeClient::downstream-added may follow at once); @callback may run
 * after those events, so track the tree from the signal.
 */
void
peer_tree_client_create_async (PeerTreeClient *self, const char *tree_id, guint k, guint k1,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (JsonObject) params = json_object_new ();
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_tree_client_create_async);
  if (tree_id && *tree_id)
    json_object_set_string_member (params, "treeId", tree_id);
  if (k)
    json_object_set_int_member (params, "k", k);
  if (k1)
    json_object_set_int_member (params, "k1", k1);
  /* The client's secret also proves ownership of the tree if the source has
   * to come back (source grace period, server restart). */
  json_object_set_string_member (params, "secret", self->secret);
  request_with_hook (self, "create", params, cancellable, create_hook, on_create_reply, task);
}

/**
 * peer_tree_client_create_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the id of the created tree, or %NULL with @error
 *   set (e.g. %PEER_TREE_ERROR_TREE_EXISTS).
 */
char *
peer_tree_client_create_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
placement_hook (PeerTreeClient *self, JsonObject *result, gpointer data)
{
  GTask *outer = data;
  const char *tree_id = str_member (result, "treeId");
  const char *parent = str_member (result, "parent");
  guint depth;
  if (!tree_id || !parent || !uint_member (result, "depth", &depth))
    return;                     /* on_placement_reply fails the task */
  Placement *p = g_new0 (Placement, 1);
  p->tree_id = g_strdup (tree_id);
  p->parent = g_strdup (parent);
  p->depth = depth;
  g_task_set_task_data (outer, p, (GDestroyNotify) placement_free);
  g_task_set_check_cancellable (outer, FALSE);
  membership_set (self, tree_id, FALSE, parent, 0, 0);
  if (g_task_get_source_tag (outer) == peer_tree_client_join_async)
    g_signal_emit (self, signals[SIG_TREE_JOINED], 0, tree_id, depth);
  g_signal_emit (self, signals[SIG_UPSTREAM_CHANGED], 0, tree_id, parent, depth);
}

static void
on_placement_reply (GObject *source, GAsyncResult *res, gpointer user_data)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (source);
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  g_autoptr (JsonObject) result = peer_tree_client_request_finish (self, res, &error);
  Placement *p = g_task_get_task_data (task);
  if (!result) {
    g_task_return_error (task, error);
  } else if (!p) {
    g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_FAILED,
        "server sent an incomplete placement");
  } else {
    Placement *copy = g_new0 (Placement, 1);
    copy->tree_id = g_strdup (p->tree_id);
    copy->parent = g_strdup (p->parent);
    copy->depth = p->depth;
    g_task_return_pointer (task, copy, (GDestroyNotify) placement_free);
  }
}

static void
placement_request (PeerTreeClient *self, const char *type, gpointer tag, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (JsonObject) params = json_object_new ();
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, tag);
  json_object_set_string_member (params, "treeId", tree_id);
  request_with_hook (self, type, params, cancellable, placement_hook, on_placement_reply, task);
}

static gboolean
placement_finish (PeerTreeClient *self, GAsyncResult *result, char **parent_id, guint *depth,
    GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  Placement *p = g_task_propagate_pointer (G_TASK (result), error);
  if (!p)
    return FALSE;
  if (parent_id)
    *parent_id = g_steal_pointer (&p->parent);
  if (depth)
    *depth = p->depth;
  placement_free (p);
  return TRUE;
}

/**
 * peer_tree_client_join_async:
 * @self: a #PeerTreeClient
 * @tree_id: the tree to join
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Joins a tree as a viewer. The server places the client breadth-first; on
 * success #PeerTreeClient::tree-joined and #PeerTreeClient::upstream-changed
 * are emitted as soon as the reply is read, before any later event (the new
 * parent's SDP offer may follow at once; @callback may run after it). Joining a tree the
 * client is already in moves it (with its own subtree) to a new place.
 */
void
peer_tree_client_join_async (PeerTreeClient *self, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (tree_id != NULL);
  placement_request (self, "join", peer_tree_client_join_async, tree_id, cancellable, callback,
      user_data);
}

/**
 * peer_tree_client_join_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @parent_id: (out) (optional) (transfer full): the assigned parent
 * @depth: (out) (optional): the depth in the tree (the source is at 0)
 * @error: return location for a #GError
 *
 * Returns: %TRUE when joined; %FALSE with @error set (e.g.
 *   %PEER_TREE_ERROR_TREE_NOT_FOUND).
 */
gboolean
peer_tree_client_join_finish (PeerTreeClient *self, GAsyncResult *result, char **parent_id,
    guint *depth, GError **error)
{
  return placement_finish (self, result, parent_id, depth, error);
}

/**
 * peer_tree_client_reconnect_upstream_async:
 * @self: a #PeerTreeClient
 * @tree_id: a tree the client is a viewer in
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Asks for a different parent (the current one is avoided when any other
 * slot is free). The client keeps its own subtree.
 * #PeerTreeClient::upstream-changed is emitted on success.
 */
void
peer_tree_client_reconnect_upstream_async (PeerTreeClient *self, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (tree_id != NULL);
  placement_request (self, "reconnect-upstream", peer_tree_client_reconnect_upstream_async,
      tree_id, cancellable, callback, user_data);
}

/**
 * peer_tree_client_reconnect_upstream_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @parent_id: (out) (optional) (transfer full): the new parent
 * @depth: (out) (optional): the new depth
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success.
 */
gboolean
peer_tree_client_reconnect_upstream_finish (PeerTreeClient *self, GAsyncResult *result,
    char **parent_id, guint *depth, GError **error)
{
  return placement_finish (self, result, parent_id, depth, error);
}

static void
leave_hook (PeerTreeClient *self, JsonObject *result, gpointer data)
{
  GTask *outer = data;
  (void) result;
  g_hash_table_remove (self->memberships, g_task_get_task_data (outer));
  g_task_set_check_cancellable (outer, FALSE);
}

static void
on_leave_reply (GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  g_autoptr (JsonObject) result = peer_tree_client_request_finish (PEER_TREE_CLIENT (source), res,
      &error);
  if (result)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/**
 * peer_tree_client_leave_async:
 * @self: a #PeerTreeClient
 * @tree_id: the tree to leave
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Leaves a tree. A viewer's children are re-parented by the server; when the
 * source leaves, the tree is closed and every member gets
 * #PeerTreeClient::tree-closed.
 */
void
peer_tree_client_leave_async (PeerTreeClient *self, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (tree_id != NULL);
  g_autoptr (JsonObject) params = json_object_new ();
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_tree_client_leave_async);
  g_task_set_task_data (task, g_strdup (tree_id), g_free);
  json_object_set_string_member (params, "treeId", tree_id);
  request_with_hook (self, "leave", params, cancellable, leave_hook, on_leave_reply, task);
}

/**
 * peer_tree_client_leave_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success.
 */
gboolean
peer_tree_client_leave_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
on_signal_reply (GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) result = peer_tree_client_request_finish (PEER_TREE_CLIENT (source), res,
      &error);
  (void) user_data;
  if (!result)
    g_debug ("signal not delivered: %s", error->message);
}

static void
send_signal (PeerTreeClient *self, const char *tree_id, const char *peer_id, const char *kind,
    JsonObject *payload)
{
  g_autoptr (JsonObject) params = json_object_new ();
  JsonObject *data = json_object_new ();
  json_object_set_string_member (params, "treeId", tree_id);
  json_object_set_string_member (params, "to", peer_id);
  json_object_set_object_member (data, kind, payload);
  json_object_set_object_member (params, "data", data);
  peer_tree_client_request_async (self, "signal", params, NULL, on_signal_reply, NULL);
}

/**
 * peer_tree_client_send_sdp:
 * @self: a #PeerTreeClient
 * @tree_id: the tree the link belongs to
 * @peer_id: the parent or child to send to
 * @type: `"offer"` or `"answer"`
 * @sdp: the session description text
 *
 * Relays an SDP to @peer_id through the server, which delivers it only
 * between a child and its assigned parent. The receiver gets
 * #PeerTreeClient::remote-sdp. A refused or undeliverable SDP is logged at
 * debug level (the peer has left; the tree events say what to do).
 */
void
peer_tree_client_send_sdp (PeerTreeClient *self, const char *tree_id, const char *peer_id,
    const char *type, const char *sdp)
{
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "type", type);
  json_object_set_string_member (o, "sdp", sdp);
  send_signal (self, tree_id, peer_id, "sdp", o);
}

/**
 * peer_tree_client_send_ice:
 * @self: a #PeerTreeClient
 * @tree_id: the tree the link belongs to
 * @peer_id: the parent or child to send to
 * @mline_index: the m-line the candidate belongs to
 * @candidate: the candidate line (`candidate:…`)
 *
 * Relays an ICE candidate, as peer_tree_client_send_sdp() does an SDP. The
 * receiver gets #PeerTreeClient::remote-ice.
 */
void
peer_tree_client_send_ice (PeerTreeClient *self, const char *tree_id, const char *peer_id,
    guint mline_index, const char *candidate)
{
  JsonObject *o = json_object_new ();
  json_object_set_int_member (o, "mline", mline_index);
  json_object_set_string_member (o, "candidate", candidate);
  send_signal (self, tree_id, peer_id, "ice", o);
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
  g_autoptr (JsonObject) msg = json_object_new ();
  json_object_set_string_member (msg, "type", "emit");
  json_object_set_int_member (msg, "id", ++self->next_id);
  json_object_set_boolean_member (msg, "noReply", TRUE);
  json_object_set_string_member (msg, "to", target);
  json_object_set_string_member (msg, "event", event);
  if (args)
    json_object_set_array_member (msg, "args", json_array_ref (args));
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
  json_object_set_int_member (params, "ackId", ack_id);
  json_object_set_boolean_member (params, "ok", ok);
  if (ok && value)
    json_object_set_member (params, "value", json_node_copy (value));
  if (!ok) {
    JsonObject *err = json_object_new ();
    json_object_set_string_member (err, "message", message ? message : "refused");
    json_object_set_object_member (params, "error", err);
  }
  peer_tree_client_request_async (self, "reply", params, NULL, on_signal_reply, NULL);
}

gboolean
_peer_tree_client_send_frame (PeerTreeClient *self, guint32 id, guint8 op, const void *data,
    gsize len)
{
  if (!self->ready || soup_websocket_connection_get_state (self->ws) != SOUP_WEBSOCKET_STATE_OPEN)
    return FALSE;
  g_autofree guint8 *buf = g_malloc (5 + len);
  buf[0] = id >> 24;
  buf[1] = id >> 16;
  buf[2] = id >> 8;
  buf[3] = id;
  buf[4] = op;
  if (len)
    memcpy (buf + 5, data, len);
  soup_websocket_connection_send_binary (self->ws, buf, 5 + len);
  return TRUE;
}

void
_peer_tree_client_add_stream (PeerTreeClient *self, PeerTreeStream *stream)
{
  g_hash_table_insert (self->streams, GUINT_TO_POINTER (peer_tree_stream_get_id (stream)), stream);
}

void
_peer_tree_client_remove_stream (PeerTreeClient *self, guint32 id)
{
  g_hash_table_remove (self->streams, GUINT_TO_POINTER (id));
}

/* ------------------------------------------------------------------------ */
/* GObject                                                                  */

/**
 * peer_tree_client_new:
 * @uri: the server, `ws://HOST:PORT` or `wss://HOST:PORT`
 * @client_id: (nullable): the clientId to ask for, or %NULL to let the
 *   server assign one
 *
 * Returns: (transfer full): a new, unconnected client bound to the
 *   thread-default main context.
 */
PeerTreeClient *
peer_tree_client_new (const char *uri, const char *client_id)
{
  return g_object_new (PEER_TREE_TYPE_CLIENT, "uri", uri, "client-id", client_id, NULL);
}

/**
 * peer_tree_client_get_uri:
 * @self: a #PeerTreeClient
 *
 * Returns: the server URL.
 */
const char *
peer_tree_client_get_uri (PeerTreeClient *self)
{
  return self->uri;
}

/**
 * peer_tree_client_get_client_id:
 * @self: a #PeerTreeClient
 *
 * Returns: (nullable): the clientId (assigned by the server if none was
 *   asked for), %NULL before the first connection.
 */
const char *
peer_tree_client_get_client_id (PeerTreeClient *self)
{
  return self->client_id;
}

/**
 * peer_tree_client_is_connected:
 * @self: a #PeerTreeClient
 *
 * Returns: %TRUE while connected and registered with the server.
 */
gboolean
peer_tree_client_is_connected (PeerTreeClient *self)
{
  return self->ready;
}

static void
peer_tree_client_init (PeerTreeClient *self)
{
  self->context = g_main_context_ref_thread_default ();
  self->session = soup_session_new ();
  self->pending = g_hash_table_new (g_int64_hash, g_int64_equal);
  self->streams = g_hash_table_new (NULL, NULL);
  self->memberships = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      (GDestroyNotify) membership_free);
  self->secret = g_uuid_string_random ();
}

static void
peer_tree_client_dispose (GObject *object)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (object);
  if (self->session)
    peer_tree_client_close (self);
  g_clear_object (&self->session);
  G_OBJECT_CLASS (peer_tree_client_parent_class)->dispose (object);
}

static void
peer_tree_client_finalize (GObject *object)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (object);
  g_hash_table_unref (self->pending);
  g_hash_table_unref (self->streams);
  g_hash_table_unref (self->memberships);
  g_main_context_unref (self->context);
  g_free (self->uri);
  g_free (self->client_id);
  g_free (self->secret);
  G_OBJECT_CLASS (peer_tree_client_parent_class)->finalize (object);
}

static void
peer_tree_client_set_property (GObject *object, guint prop_id, const GValue *value,
    GParamSpec *pspec)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (object);
  switch (prop_id) {
    case PROP_URI:
      g_free (self->uri);
      self->uri = g_value_dup_string (value);
      break;
    case PROP_CLIENT_ID:
      g_free (self->client_id);
      self->client_id = g_value_dup_string (value);
      break;
    case PROP_SECRET:
      if (g_value_get_string (value)) {
        g_free (self->secret);
        self->secret = g_value_dup_string (value);
      }
      break;
    case PROP_CONNECT_TIMEOUT:
      self->connect_timeout = g_value_get_uint (value);
      break;
    case PROP_REQUEST_TIMEOUT:
      self->request_timeout = g_value_get_uint (value);
      break;
    case PROP_AUTO_RECONNECT:
      self->auto_reconnect = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
peer_tree_client_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (object);
  switch (prop_id) {
    case PROP_URI: g_value_set_string (value, self->uri); break;
    case PROP_CLIENT_ID: g_value_set_string (value, self->client_id); break;
    case PROP_SECRET: g_value_set_string (value, self->secret); break;
    case PROP_CONNECT_TIMEOUT: g_value_set_uint (value, self->connect_timeout); break;
    case PROP_REQUEST_TIMEOUT: g_value_set_uint (value, self->request_timeout); break;
    case PROP_AUTO_RECONNECT: g_value_set_boolean (value, self->auto_reconnect); break;
    case PROP_CONNECTED: g_value_set_boolean (value, self->ready); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
peer_tree_client_class_init (PeerTreeClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->dispose = peer_tree_client_dispose;
  object_class->finalize = peer_tree_client_finalize;
  object_class->set_property = peer_tree_client_set_property;
  object_class->get_property = peer_tree_client_get_property;

  /**
   * PeerTreeClient:uri:
   *
   * The server's URL, `ws://HOST:PORT` or `wss://HOST:PORT`.
   */
  props[PROP_URI] = g_param_spec_string ("uri", "URI",
      "URL of peertree-server (ws://HOST:PORT or wss://HOST:PORT)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:client-id:
   *
   * The identity on the server; %NULL until assigned when none is asked for.
   */
  props[PROP_CLIENT_ID] = g_param_spec_string ("client-id", "Client ID",
      "Identity to register with the server (NULL: the server assigns one)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:secret:
   *
   * Secret registered with the clientId; a server started with takeover
   * allowed lets a later connection that presents it take the clientId over.
   * Random unless set.
   */
  props[PROP_SECRET] = g_param_spec_string ("secret", "Secret",
      "Secret registered with the clientId, used to take it over after a reconnection "
      "(random by default)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:connect-timeout:
   *
   * Milliseconds a connection attempt may take, hello included (0: none).
   */
  props[PROP_CONNECT_TIMEOUT] = g_param_spec_uint ("connect-timeout", "Connect timeout",
      "Milliseconds a connection attempt (WebSocket + hello) may take; 0 = no limit",
      0, G_MAXUINT, 5000, G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:request-timeout:
   *
   * Milliseconds to wait for the reply to a request (0: none).
   */
  props[PROP_REQUEST_TIMEOUT] = g_param_spec_uint ("request-timeout", "Request timeout",
      "Milliseconds to wait for a reply before failing a request; 0 = no limit",
      0, G_MAXUINT, 10000, G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:auto-reconnect:
   *
   * Whether a lost connection is re-established with backoff.
   */
  props[PROP_AUTO_RECONNECT] = g_param_spec_boolean ("auto-reconnect", "Auto reconnect",
      "Reconnect with exponential backoff (100 ms to 5 s) when an established connection drops",
      TRUE, G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:connected:
   *
   * Whether the client is connected and registered.
   */
  props[PROP_CONNECTED] = g_param_spec_boolean ("connected", "Connected",
      "Whether the client is connected and registered with the server", FALSE,
      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);

  /**
   * PeerTreeClient::tree-joined:
   * @self: the client
   * @tree_id: the tree
   * @depth: the client's depth (0 for the source)
   *
   * The client created (depth 0) or joined a tree.
   */
  signals[SIG_TREE_JOINED] = g_signal_new ("tree-joined", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_UINT);
  /**
   * PeerTreeClient::upstream-changed:
   * @self: the client
   * @tree_id: the tree
   * @parent_id: the new parent, which will send an SDP offer
   * @depth: the client's new depth
   *
   * The client got a parent: after a join, a reconnect-upstream, or because
   * the server re-parented it when its parent left.
   */
  signals[SIG_UPSTREAM_CHANGED] = g_signal_new ("upstream-changed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_UINT);
  /**
   * PeerTreeClient::downstream-added:
   * @self: the client
   * @tree_id: the tree
   * @child_id: the new child, to which this client sends an SDP offer
   *
   * The server gave this client a child.
   */
  signals[SIG_DOWNSTREAM_ADDED] = g_signal_new ("downstream-added", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::downstream-removed:
   * @self: the client
   * @tree_id: the tree
   * @child_id: the child that left, disconnected or moved
   *
   * A child is no longer this client's.
   */
  signals[SIG_DOWNSTREAM_REMOVED] = g_signal_new ("downstream-removed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::remote-sdp:
   * @self: the client
   * @tree_id: the tree
   * @peer_id: the parent or child that sent it
   * @type: `"offer"` or `"answer"`
   * @sdp: the session description
   *
   * An SDP arrived from a neighbour in a tree.
   */
  signals[SIG_REMOTE_SDP] = g_signal_new ("remote-sdp", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 4, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::remote-ice:
   * @self: the client
   * @tree_id: the tree
   * @peer_id: the parent or child that sent it
   * @mline_index: the m-line index
   * @candidate: the candidate
   *
   * An ICE candidate arrived from a neighbour in a tree.
   */
  signals[SIG_REMOTE_ICE] = g_signal_new ("remote-ice", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 4, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_UINT, G_TYPE_STRING);
  /**
   * PeerTreeClient::tree-closed:
   * @self: the client
   * @tree_id: the tree
   * @reason: why, e.g. `source-left` or `source-disconnected`
   *
   * A tree this client was in no longer exists.
   */
  signals[SIG_TREE_CLOSED] = g_signal_new ("tree-closed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::event:
   * @self: the client
   * @name: the event name
   * @event: the whole event object
   *
   * Every event the server sends, with the event name as detail (connect to
   * `event::tree-closed` for one kind). Emitted before the typed signals.
   */
  signals[SIG_EVENT] = g_signal_new ("event", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING,
      JSON_TYPE_OBJECT);
  /**
   * PeerTreeClient::error:
   * @self: the client
   * @error: what went wrong
   *
   * An error not tied to a request.
   */
  signals[SIG_ERROR] = g_signal_new ("error", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
  /**
   * PeerTreeClient::disconnected:
   * @self: the client
   *
   * The established connection was lost (not emitted for
   * peer_tree_client_close()). Reconnection follows when
   * #PeerTreeClient:auto-reconnect is set.
   */
  signals[SIG_DISCONNECTED] = g_signal_new ("disconnected", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  /**
   * PeerTreeClient::reconnected:
   * @self: the client
   *
   * The client is connected again after #PeerTreeClient::disconnected.
   */
  signals[SIG_RECONNECTED] = g_signal_new ("reconnected", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  /**
   * PeerTreeClient::message:
   * @self: the client
   * @message: the message: sender, event name, arguments, room
   *
   * A message from another client, sent to this one or to a room it is in.
   * The detail is the event name: connect to `message::chat` to receive only
   * "chat" events (peer_tree_client_connect_message_from() also filters by
   * sender). Answer with peer_tree_message_reply() when the sender waits.
   */
  signals[SIG_MESSAGE] = g_signal_new ("message", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      PEER_TREE_TYPE_MESSAGE);
  /**
   * PeerTreeClient::target-request:
   * @self: the client
   * @message: the request; its sender wants to pair with this client
   *
   * Another client called peer_tree_client_add_target_async() on this one.
   * Refuse with peer_tree_message_reply_error(); otherwise it is accepted.
   * Once paired, either side's disconnection is announced to the other by
   * #PeerTreeClient::target-disconnected.
   */
  signals[SIG_TARGET_REQUEST] = g_signal_new ("target-request", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, PEER_TREE_TYPE_MESSAGE);
  /**
   * PeerTreeClient::target-disconnected:
   * @self: the client
   * @client_id: the paired client that disconnected
   *
   * A client paired by add-target (either way) disconnected.
   */
  signals[SIG_TARGET_DISCONNECTED] = g_signal_new ("target-disconnected",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      G_TYPE_STRING);
  /**
   * PeerTreeClient::stream-request:
   * @self: the client
   * @message: the request: sender, channel (as the name), arguments
   *
   * Another client wants a byte stream on a channel (the detail). Accept with
   * peer_tree_message_accept_stream(); a request nobody accepts is refused.
   */
  signals[SIG_STREAM_REQUEST] = g_signal_new ("stream-request", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      PEER_TREE_TYPE_MESSAGE);
  /**
   * PeerTreeClient::service-call:
   * @self: the client
   * @message: the call: caller, method (as the name), service, arguments
   *
   * A call to a service this client provides (the detail is the service).
   * Answer with peer_tree_message_reply() or peer_tree_message_reply_error().
   */
  signals[SIG_SERVICE_CALL] = g_signal_new ("service-call", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      PEER_TREE_TYPE_MESSAGE);
  /**
   * PeerTreeClient::topic:
   * @self: the client
   * @service: the service
   * @topic: the topic (also the detail)
   * @args: what was published
   *
   * A publication on a topic this client subscribed to.
   */
  signals[SIG_TOPIC] = g_signal_new ("topic", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_STRING,
      G_TYPE_STRING, JSON_TYPE_ARRAY);
  /**
   * PeerTreeClient::topic-destroyed:
   * @self: the client
   * @service: the service
   * @topic: the topic
   *
   * A topic this client subscribed to was destroyed (or its service went
   * away); the subscription is gone.
   */
  signals[SIG_TOPIC_DESTROYED] = g_signal_new ("topic-destroyed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
}
