/* libpeertree — tree membership: create, join, leave, reconnect-upstream,
 * rejoin after a reconnection, SDP/ICE signalling and the tree events.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What a reply changes (the memberships) and the signals it causes are
 * applied in reply hooks (_peer_tree_client_request_with_hook()), in the
 * server's order; see ReplyHook in peertree-client-private.h.
 */
#include "peertree-client-private.h"

/* What a member declared it can relay (join, set-capacity, overload), or a
 * source its stream's bitrate: told again at rejoin. */
typedef struct {
  gint max_children;      /* -1: not said */
  guint max_upload_kbps;  /* 0: unknown */
  guint bitrate_kbps;     /* sources; 0: unknown */
} Capacity;

#define CAPACITY_UNSAID ((Capacity) { -1, 0, 0 })

typedef struct {
  gboolean source;
  char *parent;           /* members: the current parent */
  guint k, k1;            /* sources */
  Capacity capacity;
  char *data_key;         /* the tree's data key (base64), from create or a placement */
  GHashTable *children;   /* clientId set, as the server announced them: reported
                           * at rejoin, so that the server attaches only children
                           * their parent confirms */
} Membership;

static void
membership_free (Membership *m)
{
  g_free (m->parent);
  g_free (m->data_key);
  g_hash_table_unref (m->children);
  g_free (m);
}

static void
membership_set (PeerTreeClient *self, const char *tree_id, gboolean source, const char *parent,
    guint k, guint k1, const char *data_key)
{
  Membership *old = g_hash_table_lookup (self->memberships, tree_id);
  Membership *m = g_new0 (Membership, 1);
  m->source = source;
  m->parent = g_strdup (parent);
  m->k = k;
  m->k1 = k1;
  /* a reply without one (a server restarted before the source came back)
   * keeps the key the member has */
  m->data_key = g_strdup (data_key ? data_key : old ? old->data_key : NULL);
  /* a move keeps the subtree: the children stay ours */
  m->children = old ? g_hash_table_ref (old->children) :
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  m->capacity = old ? old->capacity : CAPACITY_UNSAID;
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

GHashTable *
_peer_tree_client_memberships_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      (GDestroyNotify) membership_free);
}

/* ------------------------------------------------------------------------ */
/* Tree events: handlers of the event table in peertree-client.c, called    */
/* only for events that carry a treeId                                      */

/* SDP or ICE from the parent or a child. */
void
_peer_tree_client_on_signal (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  const char *from = pt_str (ev, PT_F_FROM);
  JsonNode *data_node = json_object_get_member (ev, PT_F_DATA);
  if (!from || !data_node || !JSON_NODE_HOLDS_OBJECT (data_node))
    return;
  JsonObject *data = json_node_get_object (data_node);
  JsonNode *sdp = json_object_get_member (data, PT_F_SDP);
  JsonNode *ice = json_object_get_member (data, PT_F_ICE);
  if (sdp && JSON_NODE_HOLDS_OBJECT (sdp)) {
    const char *type = pt_str (json_node_get_object (sdp), PT_F_SDP_TYPE);
    const char *text = pt_str (json_node_get_object (sdp), PT_F_SDP);
    if (type && text)
      g_signal_emit (self, pt_signals[SIG_REMOTE_SDP], 0, tree_id, from, type, text);
  } else if (ice && JSON_NODE_HOLDS_OBJECT (ice)) {
    guint mline;
    const char *cand = pt_str (json_node_get_object (ice), PT_F_CANDIDATE);
    if (cand && pt_uint (json_node_get_object (ice), PT_F_MLINE, &mline))
      g_signal_emit (self, pt_signals[SIG_REMOTE_ICE], 0, tree_id, from, mline, cand);
  }
}

void
_peer_tree_client_on_upstream (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  const char *parent = pt_str (ev, PT_F_PARENT);
  guint depth;
  if (parent && pt_uint (ev, PT_F_DEPTH, &depth)) {
    membership_set_parent (self, tree_id, parent);
    g_signal_emit (self, pt_signals[SIG_UPSTREAM_CHANGED], 0, tree_id, parent, depth);
  }
}

/* A position re-registered after a restart was confirmed as it was. */
void
_peer_tree_client_on_placed (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  const char *parent = pt_str (ev, PT_F_PARENT);
  if (parent)
    membership_set_parent (self, tree_id, parent);
}

static void
emit_downstream (PeerTreeClient *self, guint signal, const char *tree_id, JsonObject *ev)
{
  const char *child = pt_str (ev, PT_F_CHILD);
  Membership *m = g_hash_table_lookup (self->memberships, tree_id);
  if (!child)
    return;
  if (m && signal == SIG_DOWNSTREAM_ADDED)
    g_hash_table_add (m->children, g_strdup (child));
  else if (m)
    g_hash_table_remove (m->children, child);
  g_signal_emit (self, pt_signals[signal], 0, tree_id, child);
}

void
_peer_tree_client_on_downstream_added (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  emit_downstream (self, SIG_DOWNSTREAM_ADDED, tree_id, ev);
}

void
_peer_tree_client_on_downstream_removed (PeerTreeClient *self, const char *tree_id,
    JsonObject *ev)
{
  emit_downstream (self, SIG_DOWNSTREAM_REMOVED, tree_id, ev);
}

void
_peer_tree_client_on_tree_closed (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  const char *reason = pt_str (ev, PT_F_REASON);
  g_hash_table_remove (self->memberships, tree_id);
  g_signal_emit (self, pt_signals[SIG_TREE_CLOSED], 0, tree_id, reason ? reason : "closed");
}

/* The source came back with a new data key. */
void
_peer_tree_client_on_data_key (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  const char *key = pt_str (ev, PT_F_DATA_KEY);
  Membership *m = g_hash_table_lookup (self->memberships, tree_id);
  if (!key || !m || m->source)
    return;
  g_free (m->data_key);
  m->data_key = g_strdup (key);
  g_signal_emit (self, pt_signals[SIG_DATA_KEY_CHANGED], 0, tree_id, key);
}

/* The source is away; the server keeps the tree for "grace" seconds. */
void
_peer_tree_client_on_source_lost (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  guint grace = 0;
  pt_uint (ev, PT_F_GRACE, &grace);
  g_signal_emit (self, pt_signals[SIG_SOURCE_LOST], 0, tree_id, grace);
}

/* ------------------------------------------------------------------------ */
/* Rejoin after a reconnection                                              */

/* A rejoin's placement, when the server put us elsewhere (emitted as the
 * reply is read, like join's). */
static void
rejoin_hook (PeerTreeClient *self, JsonObject *result, gpointer data)
{
  const char *tree_id = data;
  Membership *m = g_hash_table_lookup (self->memberships, tree_id);
  const char *parent = pt_str (result, PT_F_PARENT);
  guint depth;
  if (m && !m->source && parent && g_strcmp0 (parent, m->parent) != 0 &&
      pt_uint (result, PT_F_DEPTH, &depth)) {
    membership_set_parent (self, tree_id, parent);
    g_signal_emit (self, pt_signals[SIG_UPSTREAM_CHANGED], 0, tree_id, parent, depth);
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
  g_signal_emit (self, pt_signals[SIG_TREE_CLOSED], 0, tree_id, reason);
}

/* After a reconnection (the server may have restarted and forgotten
 * everything): reports each tree position, so the server can rebuild its
 * trees from what their members say, while the media links keep running. */
void
_peer_tree_client_rejoin_all (PeerTreeClient *self)
{
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, self->memberships);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    Membership *m = value;
    g_autoptr (JsonObject) params = json_object_new ();
    json_object_set_string_member (params, PT_F_TREE_ID, key);
    if (m->source) {
      json_object_set_boolean_member (params, PT_F_SOURCE, TRUE);
      json_object_set_int_member (params, PT_F_K, m->k);
      json_object_set_int_member (params, PT_F_K1, m->k1);
      json_object_set_string_member (params, PT_F_SECRET, self->secret);
      if (m->capacity.bitrate_kbps)
        json_object_set_int_member (params, PT_F_BITRATE_KBPS, m->capacity.bitrate_kbps);
      if (m->data_key)
        json_object_set_string_member (params, PT_F_DATA_KEY, m->data_key);
    } else {
      json_object_set_string_member (params, PT_F_PARENT, m->parent);
      if (m->capacity.max_children >= 0)
        json_object_set_int_member (params, PT_F_MAX_CHILDREN, m->capacity.max_children);
      if (m->capacity.max_upload_kbps)
        json_object_set_int_member (params, PT_F_MAX_UPLOAD_KBPS, m->capacity.max_upload_kbps);
    }
    JsonArray *children = json_array_new ();
    GHashTableIter ci;
    gpointer child;
    g_hash_table_iter_init (&ci, m->children);
    while (g_hash_table_iter_next (&ci, &child, NULL))
      json_array_add_string_element (children, child);
    json_object_set_array_member (params, PT_F_CHILDREN, children);
    _peer_tree_client_request_with_hook (self, PT_REQ_REJOIN, params, NULL, rejoin_hook,
        on_rejoin_reply, g_strdup (key));
  }
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
  const char *tree_id = pt_str (result, PT_F_TREE_ID);
  guint k = 0, k1 = 0;
  if (!tree_id)
    return;                     /* on_create_reply fails the task */
  pt_uint (result, PT_F_K, &k);
  pt_uint (result, PT_F_K1, &k1);
  membership_set (self, tree_id, TRUE, NULL, k, k1, pt_str (result, PT_F_DATA_KEY));
  g_task_set_task_data (outer, g_strdup (tree_id), g_free);
  g_task_set_check_cancellable (outer, FALSE);
  g_signal_emit (self, pt_signals[SIG_TREE_JOINED], 0, tree_id, 0u);
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
  peer_tree_client_create_with_data_key_async (self, tree_id, k, k1, NULL, cancellable, callback,
      user_data);
}

/**
 * peer_tree_client_create_with_data_key_async:
 * @self: a #PeerTreeClient
 * @tree_id: (nullable): the id wanted, or %NULL to let the server choose
 * @k: children per viewer, 0 for the server's default
 * @k1: children of the source, 0 for the server's default
 * @data_key: (nullable): the base64 of the source's Ed25519 public key for
 *   the data it signs (32 bytes), given to every member
 *   (peer_tree_client_dup_data_key())
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * peer_tree_client_create_async() with a data key; finish with
 * peer_tree_client_create_finish().
 */
void
peer_tree_client_create_with_data_key_async (PeerTreeClient *self, const char *tree_id, guint k,
    guint k1, const char *data_key, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data)
{
  g_autoptr (JsonObject) params = json_object_new ();
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_tree_client_create_async);
  if (tree_id && *tree_id)
    json_object_set_string_member (params, PT_F_TREE_ID, tree_id);
  if (k)
    json_object_set_int_member (params, PT_F_K, k);
  if (k1)
    json_object_set_int_member (params, PT_F_K1, k1);
  /* The client's secret also proves ownership of the tree if the source has
   * to come back (source grace period, server restart). */
  json_object_set_string_member (params, PT_F_SECRET, self->secret);
  if (data_key)
    json_object_set_string_member (params, PT_F_DATA_KEY, data_key);
  _peer_tree_client_request_with_hook (self, PT_REQ_CREATE, params, cancellable, create_hook,
      on_create_reply, task);
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
  const char *tree_id = pt_str (result, PT_F_TREE_ID);
  const char *parent = pt_str (result, PT_F_PARENT);
  guint depth;
  if (!tree_id || !parent || !pt_uint (result, PT_F_DEPTH, &depth))
    return;                     /* on_placement_reply fails the task */
  Placement *p = g_new0 (Placement, 1);
  p->tree_id = g_strdup (tree_id);
  p->parent = g_strdup (parent);
  p->depth = depth;
  g_task_set_task_data (outer, p, (GDestroyNotify) placement_free);
  g_task_set_check_cancellable (outer, FALSE);
  membership_set (self, tree_id, FALSE, parent, 0, 0, pt_str (result, PT_F_DATA_KEY));
  if (g_task_get_source_tag (outer) == peer_tree_client_join_async) {
    /* a join replaces what was declared */
    Membership *m = g_hash_table_lookup (self->memberships, tree_id);
    Capacity *cap = g_object_get_data (G_OBJECT (outer), "peertree-capacity");
    m->capacity = cap ? *cap : CAPACITY_UNSAID;
  }
  if (g_task_get_source_tag (outer) == peer_tree_client_join_async)
    g_signal_emit (self, pt_signals[SIG_TREE_JOINED], 0, tree_id, depth);
  g_signal_emit (self, pt_signals[SIG_UPSTREAM_CHANGED], 0, tree_id, parent, depth);
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

/* @cap: what a join declares (NULL: nothing) */
static void
placement_request (PeerTreeClient *self, const char *type, gpointer tag, const char *tree_id,
    const Capacity *cap, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data)
{
  g_autoptr (JsonObject) params = json_object_new ();
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, tag);
  json_object_set_string_member (params, PT_F_TREE_ID, tree_id);
  if (cap) {
    if (cap->max_children >= 0)
      json_object_set_int_member (params, PT_F_MAX_CHILDREN, cap->max_children);
    if (cap->max_upload_kbps)
      json_object_set_int_member (params, PT_F_MAX_UPLOAD_KBPS, cap->max_upload_kbps);
    g_object_set_data_full (G_OBJECT (task), "peertree-capacity", g_memdup2 (cap, sizeof *cap),
        g_free);
  }
  _peer_tree_client_request_with_hook (self, type, params, cancellable, placement_hook,
      on_placement_reply, task);
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
  placement_request (self, PT_REQ_JOIN, peer_tree_client_join_async, tree_id, NULL, cancellable,
      callback, user_data);
}

/**
 * peer_tree_client_join_with_capacity_async:
 * @self: a #PeerTreeClient
 * @tree_id: the tree to join
 * @max_children: the children this client accepts: -1 lets the server decide
 *   (its k), 0 makes it a leaf (never given a child)
 * @max_upload_kbps: its upload budget in kbit/s, 0 if unknown; with the
 *   stream's bitrate (declared by the source) the server gives it no more
 *   children than the budget carries
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_join_finish()
 * @user_data: data for @callback
 *
 * Joins a tree as peer_tree_client_join_async() does, declaring how many
 * children the client can relay to. The server places newcomers only under
 * members with room by both measures. What was declared is told again at
 * every rejoin after a reconnection.
 */
void
peer_tree_client_join_with_capacity_async (PeerTreeClient *self, const char *tree_id,
    gint max_children, guint max_upload_kbps, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (tree_id != NULL);
  g_return_if_fail (max_children >= -1);
  Capacity cap = { max_children, max_upload_kbps, 0 };
  placement_request (self, PT_REQ_JOIN, peer_tree_client_join_async, tree_id, &cap, cancellable,
      callback, user_data);
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
  placement_request (self, PT_REQ_RECONNECT_UPSTREAM, peer_tree_client_reconnect_upstream_async,
      tree_id, NULL, cancellable, callback, user_data);
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
  json_object_set_string_member (params, PT_F_TREE_ID, tree_id);
  _peer_tree_client_request_with_hook (self, PT_REQ_LEAVE, params, cancellable, leave_hook,
      on_leave_reply, task);
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

/* ------------------------------------------------------------------------ */
/* Capacity                                                                 */

typedef struct {
  char *tree_id;
  Capacity capacity;            /* what is declared (-1 / 0: unchanged) */
  gboolean overloaded;
  guint max_children;           /* from the reply */
  char **moved;
} CapacityCall;

static void
capacity_call_free (CapacityCall *call)
{
  g_free (call->tree_id);
  g_strfreev (call->moved);
  g_free (call);
}

/* The membership keeps what the server now applies, for rejoin. */
static void
capacity_hook (PeerTreeClient *self, JsonObject *result, gpointer data)
{
  CapacityCall *call = g_task_get_task_data (G_TASK (data));
  Membership *m = g_hash_table_lookup (self->memberships, call->tree_id);
  JsonArray *moved = json_object_has_member (result, PT_F_MOVED) ?
      json_object_get_array_member (result, PT_F_MOVED) : NULL;
  g_autoptr (GPtrArray) ids = g_ptr_array_new ();
  for (guint i = 0; moved && i < json_array_get_length (moved); i++) {
    JsonNode *n = json_array_get_element (moved, i);
    if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
      g_ptr_array_add (ids, g_strdup (json_node_get_string (n)));
  }
  g_ptr_array_add (ids, NULL);
  call->moved = (char **) g_ptr_array_free (g_steal_pointer (&ids), FALSE);
  pt_uint (result, PT_F_MAX_CHILDREN, &call->max_children);
  if (!m)
    return;
  if (call->capacity.max_children >= 0)
    m->capacity.max_children = call->capacity.max_children;
  if (call->capacity.max_upload_kbps)
    m->capacity.max_upload_kbps = call->capacity.max_upload_kbps;
  if (call->capacity.bitrate_kbps)
    m->capacity.bitrate_kbps = call->capacity.bitrate_kbps;
  if (call->overloaded)
    m->capacity.max_children = call->max_children;
}

static void
on_capacity_reply (GObject *source, GAsyncResult *res, gpointer user_data)
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

static void
capacity_request (PeerTreeClient *self, gpointer tag, const char *tree_id, const Capacity *cap,
    gboolean overloaded, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data)
{
  g_autoptr (JsonObject) params = json_object_new ();
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  CapacityCall *call = g_new0 (CapacityCall, 1);
  call->tree_id = g_strdup (tree_id);
  call->capacity = *cap;
  call->overloaded = overloaded;
  g_task_set_source_tag (task, tag);
  g_task_set_task_data (task, call, (GDestroyNotify) capacity_call_free);
  json_object_set_string_member (params, PT_F_TREE_ID, tree_id);
  if (cap->max_children >= 0)
    json_object_set_int_member (params, PT_F_MAX_CHILDREN, cap->max_children);
  if (cap->max_upload_kbps)
    json_object_set_int_member (params, PT_F_MAX_UPLOAD_KBPS, cap->max_upload_kbps);
  if (cap->bitrate_kbps)
    json_object_set_int_member (params, PT_F_BITRATE_KBPS, cap->bitrate_kbps);
  if (overloaded)
    json_object_set_boolean_member (params, PT_F_OVERLOADED, TRUE);
  _peer_tree_client_request_with_hook (self, PT_REQ_CAPACITY, params, cancellable, capacity_hook,
      on_capacity_reply, task);
}

/**
 * peer_tree_client_set_capacity_async:
 * @self: a #PeerTreeClient
 * @tree_id: a tree the client is a member of
 * @max_children: the children it accepts from now on, -1 to keep what was
 *   declared, 0 to take no new child
 * @max_upload_kbps: its upload budget in kbit/s, 0 to keep what was declared
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_capacity_finish()
 * @user_data: data for @callback
 *
 * Changes what the client declared at join. When it now has more children
 * than its room, the server moves the newest ones to other members (they
 * get #PeerTreeClient::upstream-changed; this client
 * #PeerTreeClient::downstream-removed).
 */
void
peer_tree_client_set_capacity_async (PeerTreeClient *self, const char *tree_id,
    gint max_children, guint max_upload_kbps, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (tree_id != NULL);
  Capacity cap = { max_children, max_upload_kbps, 0 };
  capacity_request (self, peer_tree_client_set_capacity_async, tree_id, &cap, FALSE, cancellable,
      callback, user_data);
}

/**
 * peer_tree_client_set_bitrate_async:
 * @self: a #PeerTreeClient
 * @tree_id: a tree the client is the source of
 * @bitrate_kbps: the stream's bitrate (every stream together) in kbit/s
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_capacity_finish()
 * @user_data: data for @callback
 *
 * Tells the server the tree's bitrate, which turns the viewers' upload
 * budgets into child counts for the placements that follow.
 */
void
peer_tree_client_set_bitrate_async (PeerTreeClient *self, const char *tree_id,
    guint bitrate_kbps, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data)
{
  g_return_if_fail (tree_id != NULL && bitrate_kbps > 0);
  Capacity cap = { -1, 0, bitrate_kbps };
  capacity_request (self, peer_tree_client_set_bitrate_async, tree_id, &cap, FALSE, cancellable,
      callback, user_data);
}

/**
 * peer_tree_client_report_overload_async:
 * @self: a #PeerTreeClient
 * @tree_id: a tree the client relays in
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_capacity_finish()
 * @user_data: data for @callback
 *
 * Says the client's uplink cannot carry its children: the server moves its
 * newest child to another member and lowers its max-children to the count
 * it keeps. At most once every few seconds per tree (%PEER_TREE_ERROR_LIMIT
 * otherwise).
 */
void
peer_tree_client_report_overload_async (PeerTreeClient *self, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (tree_id != NULL);
  Capacity cap = { -1, 0, 0 };
  capacity_request (self, peer_tree_client_report_overload_async, tree_id, &cap, TRUE,
      cancellable, callback, user_data);
}

/**
 * peer_tree_client_capacity_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult of peer_tree_client_set_capacity_async(),
 *   peer_tree_client_set_bitrate_async() or
 *   peer_tree_client_report_overload_async()
 * @max_children: (out) (optional): the children the server lets this client
 *   have now
 * @moved: (out) (optional) (transfer full): the children it moved away,
 *   %NULL-terminated (possibly empty)
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success.
 */
gboolean
peer_tree_client_capacity_finish (PeerTreeClient *self, GAsyncResult *result,
    guint *max_children, char ***moved, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return FALSE;
  CapacityCall *call = g_task_get_task_data (G_TASK (result));
  if (max_children)
    *max_children = call->max_children;
  if (moved)
    *moved = call->moved ? g_strdupv (call->moved) : g_new0 (char *, 1);
  return TRUE;
}

static void
send_signal (PeerTreeClient *self, const char *tree_id, const char *peer_id, const char *kind,
    JsonObject *payload)
{
  g_autoptr (JsonObject) params = json_object_new ();
  JsonObject *data = json_object_new ();
  json_object_set_string_member (params, PT_F_TREE_ID, tree_id);
  json_object_set_string_member (params, PT_F_TO, peer_id);
  json_object_set_object_member (data, kind, payload);
  json_object_set_object_member (params, PT_F_DATA, data);
  peer_tree_client_request_async (self, PT_REQ_SIGNAL, params, NULL, _peer_tree_client_log_undelivered,
      NULL);
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
  json_object_set_string_member (o, PT_F_SDP_TYPE, type);
  json_object_set_string_member (o, PT_F_SDP, sdp);
  send_signal (self, tree_id, peer_id, PT_F_SDP, o);
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
  json_object_set_int_member (o, PT_F_MLINE, mline_index);
  json_object_set_string_member (o, PT_F_CANDIDATE, candidate);
  send_signal (self, tree_id, peer_id, PT_F_ICE, o);
}


/* ------------------------------------------------------------------------ */
/* Reports                                                                  */

static JsonObject *
report_params (const char *tree_id, const PeerTreeLinkReport *report)
{
  JsonObject *params = json_object_new ();
  /* within the protocol's ranges: a figure out of them would refuse the
   * whole report */
  PtReport r = PT_REPORT_INIT;
  if (report->child_count >= 0)
    r.child_count = MIN (report->child_count, PT_MAX_REPORTED_CHILDREN);
  if (report->bitrate_kbps >= 0)
    r.bitrate_kbps = MIN (report->bitrate_kbps, PT_REPORT_MAX_KBPS);
  if (report->loss_percent >= 0)
    r.loss_percent = MIN (report->loss_percent, 100.0);
  if (report->rtt_ms >= 0)
    r.rtt_ms = MIN (report->rtt_ms, PT_REPORT_MAX_RTT_MS);
  if (report->frames_per_second >= 0)
    r.frames_per_second = MIN (report->frames_per_second, PT_REPORT_MAX_FPS);
  json_object_set_string_member (params, PT_F_TREE_ID, tree_id);
  pt_report_write (&r, params);
  return params;
}

/**
 * peer_tree_client_report_async:
 * @self: a #PeerTreeClient
 * @tree_id: a tree the client is a member of
 * @report: the figures (those unknown left at -1)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the server answered
 * @user_data: data for @callback
 *
 * Reports the client's link figures in @tree_id to the server (the `report`
 * request), which keeps the latest for its dashboard. The server accepts one
 * a second per tree: a report sooner fails with %PEER_TREE_ERROR_LIMIT.
 * Figures beyond the protocol's ranges are clamped to them.
 */
void
peer_tree_client_report_async (PeerTreeClient *self, const char *tree_id,
    const PeerTreeLinkReport *report, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data)
{
  g_return_if_fail (PEER_TREE_IS_CLIENT (self));
  g_return_if_fail (tree_id != NULL && report != NULL);
  g_autoptr (JsonObject) params = report_params (tree_id, report);
  peer_tree_client_request_async (self, PT_REQ_REPORT, params, cancellable, callback, user_data);
}

gboolean
peer_tree_client_report_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_autoptr (JsonObject) res = peer_tree_client_request_finish (self, result, error);
  return res != NULL;
}

/**
 * peer_tree_client_send_report:
 * @self: a #PeerTreeClient
 * @tree_id: a tree the client is a member of
 * @report: the figures
 *
 * peer_tree_client_report_async() without a callback: a refusal (too soon,
 * no longer a member, not connected) is logged at debug level.
 */
void
peer_tree_client_send_report (PeerTreeClient *self, const char *tree_id,
    const PeerTreeLinkReport *report)
{
  peer_tree_client_report_async (self, tree_id, report, NULL, _peer_tree_client_log_undelivered,
      NULL);
}

/**
 * peer_tree_client_dup_data_key:
 * @self: a #PeerTreeClient
 * @tree_id: a tree the client is in
 *
 * The tree's data key: the base64 of the Ed25519 public key its source
 * registered at create (given with every placement; known when
 * #PeerTreeClient::tree-joined and #PeerTreeClient::upstream-changed are
 * emitted).
 *
 * Returns: (transfer full) (nullable): the key, or %NULL if the tree has
 *   none or the client is not in it.
 */
char *
peer_tree_client_dup_data_key (PeerTreeClient *self, const char *tree_id)
{
  g_return_val_if_fail (PEER_TREE_IS_CLIENT (self), NULL);
  Membership *m = tree_id ? g_hash_table_lookup (self->memberships, tree_id) : NULL;
  return m ? g_strdup (m->data_key) : NULL;
}

/**
 * peer_tree_client_report_relay_async:
 * @self: a #PeerTreeClient
 * @tree_id: a tree the client is a viewer in
 * @relay: the client's parent there
 * @reason: "forged" (data failing the source's signature) or "replayed"
 *   (data delivered already)
 * @cancellable: (nullable): a #GCancellable
 * @callback: (nullable): called with the outcome; finish with
 *   peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Reports that the parent forwarded forged or replayed data: the server
 * stops giving it children and places its children (this client among
 * them) elsewhere (#PeerTreeClient::upstream-changed follows).
 */
void
peer_tree_client_report_relay_async (PeerTreeClient *self, const char *tree_id, const char *relay,
    const char *reason, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data)
{
  g_return_if_fail (tree_id != NULL && relay != NULL && reason != NULL);
  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_string_member (params, PT_F_TREE_ID, tree_id);
  json_object_set_string_member (params, PT_F_RELAY, relay);
  json_object_set_string_member (params, PT_F_REASON, reason);
  peer_tree_client_request_async (self, PT_REQ_REPORT_RELAY, params, cancellable, callback,
      user_data);
}
