/* peertree-server — signalling server: WebSocket + JSON, k-tree placement.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything runs on one GMainContext (the thread-default one at listen time).
 * Clients are indexed by clientId in a hash table, so routing a message to a
 * peer is O(1) whatever the number of connected clients.
 *
 * Connection life cycle:
 *   accepted ──hello──▶ registered ──(close | dead | flood)──▶ gone
 * A connection that is "gone" has already been removed from every index and
 * every tree (its peers told); only its WebSocket close handshake (pt-ws.c)
 * may still be running, and its PtConn is freed when that ends. No message of
 * a gone connection is read.
 */
#include "pt-server-private.h"

#include <libsoup/soup.h>
#include <string.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1
#define ID_MAX_LEN 64
#define SECRET_MAX_LEN 256
#define HELLO_TIMEOUT_US (10 * G_USEC_PER_SEC)

enum {
  PROP_0,
  PROP_HOST,
  PROP_PORT,
  PROP_K,
  PROP_K1,
  PROP_MAX_MESSAGE_SIZE,
  PROP_KEEPALIVE_INTERVAL,
  PROP_DEAD_TIMEOUT,
  PROP_RATE,
  PROP_BURST,
  PROP_MAX_CLIENTS,
  PROP_MAX_TREES_PER_CLIENT,
  PROP_MAX_BUFFERED,
  PROP_SOURCE_GRACE,
  PROP_ALLOW_TAKEOVER,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

G_DEFINE_FINAL_TYPE (PtServer, pt_server, G_TYPE_OBJECT)

/* ------------------------------------------------------------------------ */
/* JSON helpers                                                             */

void
pt_fault_clear (Fault *f)
{
  g_clear_pointer (&f->message, g_free);
  f->code = NULL;
}

gboolean
pt_fault_set (Fault *f, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_free (f->message);
  f->code = code;
  f->message = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return FALSE;
}

gboolean
pt_valid_id (const char *s)
{
  gsize n = strlen (s);
  if (n == 0 || n > ID_MAX_LEN)
    return FALSE;
  for (gsize i = 0; i < n; i++) {
    char c = s[i];
    if (!(g_ascii_isalnum (c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '@'))
      return FALSE;
  }
  return TRUE;
}

/* Reads an optional string member; FALSE (with @f set) if present but not a string. */
gboolean
pt_get_string (JsonObject *obj, const char *name, gboolean required, const char **out, Fault *f)
{
  JsonNode *node = json_object_get_member (obj, name);
  *out = NULL;
  if (!node || JSON_NODE_HOLDS_NULL (node)) {
    if (required)
      return pt_fault_set (f, "bad-request", "missing field \"%s\"", name);
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be a string", name);
  *out = json_node_get_string (node);
  return TRUE;
}

gboolean
pt_get_id (JsonObject *obj, const char *name, gboolean required, const char **out, Fault *f)
{
  if (!pt_get_string (obj, name, required, out, f))
    return FALSE;
  if (*out && !pt_valid_id (*out))
    return pt_fault_set (f, "invalid-id",
        "field \"%s\" must be 1 to %d characters of A-Z a-z 0-9 - _ . : @", name, ID_MAX_LEN);
  return TRUE;
}

gboolean
pt_get_uint (JsonObject *obj, const char *name, gboolean required, gint64 max, gint64 *out, Fault *f)
{
  JsonNode *node = json_object_get_member (obj, name);
  *out = 0;
  if (!node || JSON_NODE_HOLDS_NULL (node)) {
    if (required)
      return pt_fault_set (f, "bad-request", "missing field \"%s\"", name);
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be an integer", name);
  gint64 v = json_node_get_int (node);
  if (v < 0 || v > max)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be between 0 and %" G_GINT64_FORMAT,
        name, max);
  *out = v;
  return TRUE;
}

char *
pt_random_id (const char *prefix)
{
  return g_strdup_printf ("%s%08x%08x", prefix, g_random_int (), g_random_int ());
}

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

void
pt_conn_send (PtConn *c, JsonObject *obj)
{
  if (!conn_can_send (c))
    return;
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), obj);
  gsize len;
  g_autofree char *text = json_to_string (node, FALSE);
  len = strlen (text);
  pt_ws_send (c->ws, FALSE, text, len);
  conn_check_buffered (c);
}

void
pt_conn_send_binary (PtConn *c, const guint8 *data, gsize len)
{
  if (!conn_can_send (c))
    return;
  pt_ws_send (c->ws, TRUE, data, len);
  conn_check_buffered (c);
}

void
pt_conn_reply_ok (PtConn *c, gint64 id, JsonObject *result /* transfer full, nullable */)
{
  g_autoptr (JsonObject) obj = json_object_new ();
  json_object_set_string_member (obj, "type", "reply");
  json_object_set_int_member (obj, "id", id);
  json_object_set_boolean_member (obj, "ok", TRUE);
  json_object_set_object_member (obj, "result", result ? result : json_object_new ());
  pt_conn_send (c, obj);
}

void
pt_conn_reply_error (PtConn *c, gint64 id, const Fault *f)
{
  g_autoptr (JsonObject) obj = json_object_new ();
  g_autoptr (JsonObject) err = json_object_new ();
  json_object_set_string_member (obj, "type", "reply");
  if (id >= 0)
    json_object_set_int_member (obj, "id", id);
  else
    json_object_set_null_member (obj, "id");
  json_object_set_boolean_member (obj, "ok", FALSE);
  json_object_set_string_member (err, "code", f->code);
  json_object_set_string_member (err, "message", f->message);
  json_object_set_object_member (obj, "error", g_steal_pointer (&err));
  pt_conn_send (c, obj);
}

/* A new event object {"type":"event","event":NAME,"treeId":TREE}. */
JsonObject *
pt_event_new (const char *name, const char *tree_id)
{
  JsonObject *obj = json_object_new ();
  json_object_set_string_member (obj, "type", "event");
  json_object_set_string_member (obj, "event", name);
  if (tree_id)
    json_object_set_string_member (obj, "treeId", tree_id);
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
/* Tree notifications                                                       */

/* A client's trees; NULL until it joins one (idle clients stay small). */
static guint
conn_n_trees (PtConn *c)
{
  return c->trees ? g_hash_table_size (c->trees) : 0;
}

static TreeEntry *
conn_tree (PtConn *c, const char *tree_id)
{
  return c->trees ? g_hash_table_lookup (c->trees, tree_id) : NULL;
}

static void
conn_add_tree (PtConn *c, TreeEntry *t)
{
  if (!c->trees)
    c->trees = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (c->trees, t->id, t);
}

static void
conn_forget (PtConn *c, const char *tree_id)
{
  if (c->trees)
    g_hash_table_remove (c->trees, tree_id);
}

static void
notify_downstream (PtServer *self, TreeEntry *t, const char *parent, const char *child,
    gboolean added, const char *reason)
{
  JsonObject *ev = pt_event_new (added ? "downstream-added" : "downstream-removed", t->id);
  json_object_set_string_member (ev, "child", child);
  if (reason)
    json_object_set_string_member (ev, "reason", reason);
  pt_send_event_to (self, parent, ev);
}

static void
notify_upstream (PtServer *self, TreeEntry *t, const char *peer, const char *reason)
{
  JsonObject *ev = pt_event_new ("upstream", t->id);
  json_object_set_string_member (ev, "parent", pt_tree_get_parent (t->tree, peer));
  json_object_set_int_member (ev, "depth", pt_tree_get_depth (t->tree, peer));
  json_object_set_string_member (ev, "reason", reason);
  pt_send_event_to (self, peer, ev);
}

static void
conn_forget_tree (PtServer *self, const char *member, TreeEntry *t)
{
  PtConn *c = g_hash_table_lookup (self->clients, member);
  if (c)
    conn_forget (c, t->id);
}

static void
close_member (const char *peer, const char *parent, guint depth, gpointer user_data)
{
  (void) parent;
  (void) depth;
  gpointer *args = user_data;
  PtServer *self = args[0];
  TreeEntry *t = args[1];
  const char *reason = args[2];
  conn_forget_tree (self, peer, t);
  JsonObject *ev = pt_event_new ("tree-closed", t->id);
  json_object_set_string_member (ev, "reason", reason);
  pt_send_event_to (self, peer, ev);
}

/* Closes a tree: every member (the root included) is told and forgets it. */
static void
tree_close (PtServer *self, TreeEntry *t, const char *reason)
{
  gpointer args[3] = { self, t, (gpointer) reason };
  g_debug ("closing tree %s (%s)", t->id, reason);
  pt_tree_foreach (t->tree, close_member, args);
  g_hash_table_remove (self->trees, t->id);
}

/* Removes a non-root @peer from @t, telling its parent and re-parenting its
 * children (each keeps its subtree). */
static void
tree_remove_member (PtServer *self, TreeEntry *t, const char *peer, const char *reason)
{
  g_autofree char *parent = g_strdup (pt_tree_get_parent (t->tree, peer));
  g_autoptr (GArray) moves = g_array_new (FALSE, FALSE, sizeof (PtMove));
  conn_forget_tree (self, peer, t);
  if (!pt_tree_remove (t->tree, peer, moves))
    return;
  notify_downstream (self, t, parent, peer, FALSE, reason);
  for (guint i = 0; i < moves->len; i++) {
    PtMove *m = &g_array_index (moves, PtMove, i);
    notify_upstream (self, t, m->peer, "parent-left");
    notify_downstream (self, t, m->parent, m->peer, TRUE, NULL);
  }
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */

static JsonObject *
placement_result (TreeEntry *t, const char *peer)
{
  JsonObject *res = json_object_new ();
  json_object_set_string_member (res, "treeId", t->id);
  json_object_set_string_member (res, "parent", pt_tree_get_parent (t->tree, peer));
  json_object_set_int_member (res, "depth", pt_tree_get_depth (t->tree, peer));
  return res;
}

static void
hash_secret (const char *secret, guint8 out[32])
{
  gsize len = 32;
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (sum, (const guchar *) secret, strlen (secret));
  g_checksum_get_digest (sum, out, &len);
}

static gboolean
secret_equal (const guint8 *a, const guint8 *b)
{
  guint8 diff = 0; /* constant time */
  for (int i = 0; i < 32; i++)
    diff |= a[i] ^ b[i];
  return diff == 0;
}


static gboolean
handle_hello (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  const char *client_id, *secret;
  gint64 version;

  if (c->client_id)
    return pt_fault_set (f, "already-hello", "hello was already received on this connection");
  if (!pt_get_uint (msg, "version", TRUE, G_MAXINT, &version, f) ||
      !pt_get_id (msg, "clientId", FALSE, &client_id, f) ||
      !pt_get_string (msg, "secret", FALSE, &secret, f))
    return FALSE;
  if (version != PROTOCOL_VERSION)
    return pt_fault_set (f, "unsupported-version", "protocol version %" G_GINT64_FORMAT
        " is not supported; this server speaks version %d", version, PROTOCOL_VERSION);
  if (secret && (strlen (secret) == 0 || strlen (secret) > SECRET_MAX_LEN))
    return pt_fault_set (f, "bad-request", "secret must be 1 to %d bytes", SECRET_MAX_LEN);

  guint8 hash[32];
  if (secret)
    hash_secret (secret, hash);

  g_autofree char *assigned = NULL;
  if (client_id) {
    PtConn *old = g_hash_table_lookup (self->clients, client_id);
    if (old) {
      if (!self->allow_takeover || !secret || !old->has_secret ||
          !secret_equal (hash, old->secret_hash))
        return pt_fault_set (f, "duplicate-client-id",
            "clientId \"%s\" is already connected", client_id);
      g_debug ("client %s taken over by a new connection", client_id);
      pt_conn_gone (old, CLOSE_TAKEN_OVER, "clientId taken over by a new connection");
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
  json_object_set_string_member (*result, "clientId", c->client_id);
  json_object_set_int_member (*result, "version", PROTOCOL_VERSION);
  json_object_set_int_member (*result, "k", self->k);
  json_object_set_int_member (*result, "k1", self->k1);
  json_object_set_int_member (*result, "maxMessageSize", self->max_message_size);
  return TRUE;
}

/* Runs @func (self, g_strdup (arg)) after the current request's reply. */
static void
after_reply (PtServer *self, void (*func) (PtServer *, char *), const char *arg)
{
  g_assert (self->after_reply == NULL);
  self->after_reply = func;
  self->after_reply_arg = g_strdup (arg);
}

/* ---- Source grace period ---- */

static void
source_lost_member (const char *peer, const char *parent, guint depth, gpointer user_data)
{
  gpointer *args = user_data;
  PtServer *self = args[0];
  TreeEntry *t = args[1];
  if (parent == NULL)
    return; /* the root itself */
  JsonObject *ev = pt_event_new ("source-lost", t->id);
  json_object_set_int_member (ev, "grace", self->source_grace);
  pt_send_event_to (self, peer, ev);
}

/* The source disconnected: the tree keeps its shape for source-grace seconds,
 * waiting for it (or a process with the tree's secret) to come back. */
static void
tree_source_lost (PtServer *self, TreeEntry *t)
{
  gpointer args[2] = { self, t };
  t->source_gone = TRUE;
  t->grace_deadline = g_get_monotonic_time () + (gint64) self->source_grace * G_USEC_PER_SEC;
  g_debug ("tree %s lost its source; waiting %u s", t->id, self->source_grace);
  pt_tree_foreach (t->tree, source_lost_member, args);
}

/* The source came back and has no links any more: it offers each of its
 * children a new link. Under a new clientId (@renamed) the children are also
 * told their parent changed; under the same one they keep it and just see an
 * offer with a new session. */
static void
announce_root_children (PtServer *self, char *tree_id, gboolean renamed)
{
  g_autofree char *id = tree_id;
  TreeEntry *t = g_hash_table_lookup (self->trees, id);
  if (!t)
    return;
  const char *root = pt_tree_get_root (t->tree);
  g_autofree const char **children = pt_tree_get_children (t->tree, root);
  for (guint i = 0; children[i]; i++) {
    if (renamed)
      notify_upstream (self, t, children[i], "source-returned");
    notify_downstream (self, t, root, children[i], TRUE, NULL);
  }
}

static void
announce_new_root (PtServer *self, char *tree_id)
{
  announce_root_children (self, tree_id, TRUE);
}

static void
announce_children_to_root (PtServer *self, char *tree_id)
{
  announce_root_children (self, tree_id, FALSE);
}

/* create (or rejoin as source) of an existing tree: allowed to the source
 * that comes back within the grace period, or after a server restart, with
 * the tree's secret. */
static gboolean
tree_reclaim (PtConn *c, TreeEntry *t, const char *secret, gboolean rejoin, JsonObject **result,
    Fault *f)
{
  PtServer *self = c->server;
  const char *root = pt_tree_get_root (t->tree);
  if (!t->source_gone) {
    if (g_strcmp0 (root, c->client_id) != 0)
      return pt_fault_set (f, "tree-exists", "tree \"%s\" already exists", t->id);
  } else {
    guint8 hash[32];
    if (secret)
      hash_secret (secret, hash);
    if (!t->has_secret || !secret || !secret_equal (hash, t->secret_hash))
      return pt_fault_set (f, "tree-exists",
          "tree \"%s\" exists and waits for its source; reclaiming it needs its secret", t->id);
    if (g_strcmp0 (root, c->client_id) != 0 && pt_tree_contains (t->tree, c->client_id))
      return pt_fault_set (f, "bad-request", "a member of tree \"%s\" cannot become its source",
          t->id);
    if (conn_n_trees (c) >= self->max_trees_per_client)
      return pt_fault_set (f, "limit", "a client may be in at most %u trees",
          self->max_trees_per_client);
    gboolean renamed = g_strcmp0 (root, c->client_id) != 0;
    pt_tree_rename_root (t->tree, c->client_id);
    t->source_gone = FALSE;
    conn_add_tree (c, t);
    g_debug ("tree %s reclaimed by %s", t->id, c->client_id);
    /* A rejoin under the same clientId comes from a client whose links may
     * still be up (its connection to the server dropped): nothing to
     * renegotiate. A create (a restarted source process) or a new clientId
     * means new links to every child. */
    if (renamed)
      after_reply (self, announce_new_root, t->id);
    else if (!rejoin)
      after_reply (self, announce_children_to_root, t->id);
  }
  *result = json_object_new ();
  json_object_set_string_member (*result, "treeId", t->id);
  json_object_set_int_member (*result, "k", pt_tree_get_k (t->tree));
  json_object_set_int_member (*result, "k1", pt_tree_get_k1 (t->tree));
  json_object_set_boolean_member (*result, "reclaimed", TRUE);
  return TRUE;
}

/* ---- Rebuilding after a server restart ---- */

typedef struct {
  char *peer, *parent;
  gint64 deadline;
} Claim;

static void
claim_free (Claim *cl)
{
  g_free (cl->peer);
  g_free (cl->parent);
  g_free (cl);
}

static GPtrArray *
claims_of (PtServer *self, const char *tree_id, gboolean create)
{
  GPtrArray *list = g_hash_table_lookup (self->claims, tree_id);
  if (!list && create) {
    list = g_ptr_array_new_with_free_func ((GDestroyNotify) claim_free);
    g_hash_table_insert (self->claims, g_strdup (tree_id), list);
  }
  return list;
}

static void
send_placed (PtServer *self, TreeEntry *t, const char *peer)
{
  JsonObject *ev = pt_event_new ("placed", t->id);
  json_object_set_string_member (ev, "parent", pt_tree_get_parent (t->tree, peer));
  json_object_set_int_member (ev, "depth", pt_tree_get_depth (t->tree, peer));
  pt_send_event_to (self, peer, ev);
}

/* Attaches every claim whose parent is in the tree, as claimed (silently:
 * the media link is already there), until none makes progress. With
 * @force, the rest are placed breadth-first and told to reconnect. */
static void
claims_settle (PtServer *self, TreeEntry *t, gboolean force)
{
  GPtrArray *list = claims_of (self, t->id, FALSE);
  if (!list)
    return;
  gboolean progress = TRUE;
  while (progress) {
    progress = FALSE;
    for (guint i = 0; i < list->len;) {
      Claim *cl = list->pdata[i];
      PtConn *c = pt_server_lookup (self, cl->peer);
      if (!c || pt_tree_contains (t->tree, cl->peer)) {
        g_ptr_array_remove_index_fast (list, i);
        continue;
      }
      if (pt_tree_attach (t->tree, cl->peer, cl->parent)) {
        conn_add_tree (c, t);
        send_placed (self, t, cl->peer);
        g_ptr_array_remove_index_fast (list, i);
        progress = TRUE;
        continue;
      }
      /* Parent present but full: no point waiting. */
      if (force || pt_tree_contains (t->tree, cl->parent)) {
        pt_tree_join (t->tree, cl->peer);
        conn_add_tree (c, t);
        notify_upstream (self, t, cl->peer, "rebuilt");
        notify_downstream (self, t, pt_tree_get_parent (t->tree, cl->peer), cl->peer, TRUE, NULL);
        g_ptr_array_remove_index_fast (list, i);
        progress = TRUE;
        continue;
      }
      i++;
    }
  }
  if (list->len == 0)
    g_hash_table_remove (self->claims, t->id);
}

static void
claims_process (PtServer *self, char *tree_id)
{
  g_autofree char *id = tree_id;
  TreeEntry *t = g_hash_table_lookup (self->trees, id);
  if (t)
    claims_settle (self, t, FALSE);
}

/* Expired claims: placed breadth-first if their tree exists, else told the
 * tree is gone. */
static void
claims_sweep (PtServer *self, gint64 now)
{
  g_autoptr (GList) ids = g_hash_table_get_keys (self->claims);
  for (GList *l = ids; l; l = l->next) {
    GPtrArray *list = g_hash_table_lookup (self->claims, l->data);
    gboolean expired = FALSE;
    for (guint i = 0; i < list->len; i++)
      expired |= ((Claim *) list->pdata[i])->deadline <= now;
    if (!expired)
      continue;
    TreeEntry *t = g_hash_table_lookup (self->trees, l->data);
    if (t) {
      claims_settle (self, t, TRUE);
      continue;
    }
    for (guint i = 0; i < list->len;) {
      Claim *cl = list->pdata[i];
      if (cl->deadline > now) {
        i++;
        continue;
      }
      JsonObject *ev = pt_event_new ("tree-closed", l->data);
      json_object_set_string_member (ev, "reason", "source-not-back");
      pt_send_event_to (self, cl->peer, ev);
      g_ptr_array_remove_index_fast (list, i);
    }
    if (list->len == 0)
      g_hash_table_remove (self->claims, l->data);
  }
}

static void
claims_forget_peer (PtServer *self, const char *peer)
{
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->claims);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    GPtrArray *list = value;
    for (guint i = 0; i < list->len;)
      if (g_strcmp0 (((Claim *) list->pdata[i])->peer, peer) == 0)
        g_ptr_array_remove_index_fast (list, i);
      else
        i++;
    if (list->len == 0)
      g_hash_table_iter_remove (&it);
  }
}

static gboolean handle_create (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f);

/* rejoin {treeId, parent} — a member re-registering its position after the
 * server restarted (or its connection dropped);
 * rejoin {treeId, source: true, k?, k1?, secret?} — the source doing so. */
static gboolean
handle_rejoin (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  const char *tree_id, *parent;
  gboolean source = FALSE;
  JsonNode *src = json_object_get_member (msg, "source");
  if (src && (!JSON_NODE_HOLDS_VALUE (src) || json_node_get_value_type (src) != G_TYPE_BOOLEAN))
    return pt_fault_set (f, "bad-request", "field \"source\" must be true or false");
  source = src && json_node_get_boolean (src);
  if (!pt_get_id (msg, "treeId", TRUE, &tree_id, f))
    return FALSE;
  if (source) {
    self->req_silent = TRUE; /* tells tree_reclaim this is a rejoin */
    return handle_create (c, msg, result, f);
  }
  if (!pt_get_id (msg, "parent", TRUE, &parent, f))
    return FALSE;
  if (g_strcmp0 (parent, c->client_id) == 0)
    return pt_fault_set (f, "bad-request", "a peer cannot be its own parent");

  TreeEntry *t = g_hash_table_lookup (self->trees, tree_id);
  /* The media links already exist: parents are told nothing unless the
   * server has to place the peer elsewhere. */
  self->req_silent = TRUE;
  if (t && pt_tree_contains (t->tree, c->client_id)) {
    if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0)
      return pt_fault_set (f, "is-root", "you are the source of tree \"%s\"", tree_id);
    *result = placement_result (t, c->client_id);
    return TRUE;
  }
  if (conn_n_trees (c) >= self->max_trees_per_client)
    return pt_fault_set (f, "limit", "a client may be in at most %u trees", self->max_trees_per_client);
  if (t && pt_tree_attach (t->tree, c->client_id, parent)) {
    conn_add_tree (c, t);
    *result = placement_result (t, c->client_id);
    /* Reports waiting for this peer (its children) can be attached now. */
    after_reply (self, claims_process, t->id);
    return TRUE;
  }
  if (t && pt_tree_contains (t->tree, parent)) {
    /* Parent full: placed like a join; the dispatcher tells the new parent. */
    self->req_silent = FALSE;
    pt_tree_join (t->tree, c->client_id);
    conn_add_tree (c, t);
    *result = placement_result (t, c->client_id);
    after_reply (self, claims_process, t->id);
    return TRUE;
  }
  /* Its tree or its parent is not back yet. Pending reports count against
   * the client's tree limit. */
  guint mine = 0;
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->claims);
  while (g_hash_table_iter_next (&it, NULL, &value))
    for (guint i = 0; i < ((GPtrArray *) value)->len; i++)
      mine += g_strcmp0 (((Claim *) ((GPtrArray *) value)->pdata[i])->peer, c->client_id) == 0;
  if (mine + conn_n_trees (c) >= self->max_trees_per_client)
    return pt_fault_set (f, "limit", "a client may be in at most %u trees",
        self->max_trees_per_client);
  GPtrArray *list = claims_of (self, tree_id, TRUE);
  Claim *cl = g_new0 (Claim, 1);
  cl->peer = g_strdup (c->client_id);
  cl->parent = g_strdup (parent);
  cl->deadline = g_get_monotonic_time () + (gint64) MAX (self->source_grace, 1) * G_USEC_PER_SEC;
  g_ptr_array_add (list, cl);
  *result = json_object_new ();
  json_object_set_string_member (*result, "treeId", tree_id);
  json_object_set_boolean_member (*result, "pending", TRUE);
  return TRUE;
}

static gboolean
handle_create (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  const char *tree_id;
  gint64 k, k1;

  const char *secret;
  if (!pt_get_id (msg, "treeId", FALSE, &tree_id, f) ||
      !pt_get_uint (msg, "k", FALSE, self->k, &k, f) ||
      !pt_get_uint (msg, "k1", FALSE, self->k1, &k1, f) ||
      !pt_get_string (msg, "secret", FALSE, &secret, f))
    return FALSE;
  if (secret && (strlen (secret) == 0 || strlen (secret) > SECRET_MAX_LEN))
    return pt_fault_set (f, "bad-request", "secret must be 1 to %d bytes", SECRET_MAX_LEN);
  TreeEntry *existing = tree_id ? g_hash_table_lookup (self->trees, tree_id) : NULL;
  if (existing)
    return tree_reclaim (c, existing, secret, self->req_silent, result, f);
  if (conn_n_trees (c) >= self->max_trees_per_client)
    return pt_fault_set (f, "limit", "a client may be in at most %u trees", self->max_trees_per_client);

  TreeEntry *t = g_new0 (TreeEntry, 1);
  if (secret) {
    hash_secret (secret, t->secret_hash);
    t->has_secret = TRUE;
  }
  if (tree_id)
    t->id = g_strdup (tree_id);
  else
    do {
      g_free (t->id);
      t->id = pt_random_id ("t-");
    } while (g_hash_table_contains (self->trees, t->id));
  t->tree = pt_tree_new (c->client_id, k ? k : self->k, k1 ? k1 : self->k1);
  g_hash_table_insert (self->trees, t->id, t);
  conn_add_tree (c, t);

  *result = json_object_new ();
  json_object_set_string_member (*result, "treeId", t->id);
  json_object_set_int_member (*result, "k", pt_tree_get_k (t->tree));
  json_object_set_int_member (*result, "k1", pt_tree_get_k1 (t->tree));
  /* Members that reported this tree after a server restart take their places. */
  after_reply (self, claims_process, t->id);
  return TRUE;
}

static TreeEntry *
lookup_tree (PtConn *c, JsonObject *msg, gboolean must_be_member, Fault *f)
{
  const char *tree_id;
  if (!pt_get_id (msg, "treeId", TRUE, &tree_id, f))
    return NULL;
  TreeEntry *t = g_hash_table_lookup (c->server->trees, tree_id);
  if (!t) {
    pt_fault_set (f, "tree-not-found", "tree \"%s\" does not exist", tree_id);
    return NULL;
  }
  /* Membership is the connection's, not the clientId's: during a source's
   * grace period another connection may say hello with the departed
   * source's clientId, and must not act as the source. */
  if (must_be_member && conn_tree (c, t->id) != t) {
    pt_fault_set (f, "not-member", "you are not a member of tree \"%s\"", tree_id);
    return NULL;
  }
  return t;
}

/* After @peer moved away from @old_parent (NULL if new), tells both parents. */
static void
announce_move (PtServer *self, TreeEntry *t, const char *peer, const char *old_parent,
    const char *reason)
{
  const char *parent = pt_tree_get_parent (t->tree, peer);
  if (old_parent && g_strcmp0 (old_parent, parent) == 0)
    return;
  if (old_parent)
    notify_downstream (self, t, old_parent, peer, FALSE, reason);
  notify_downstream (self, t, parent, peer, TRUE, NULL);
}

static gboolean
handle_join (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  TreeEntry *t = lookup_tree (c, msg, FALSE, f);
  if (!t)
    return FALSE;
  if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0)
    return pt_fault_set (f, "is-root", "you are the source of tree \"%s\"", t->id);
  gboolean member = pt_tree_contains (t->tree, c->client_id);
  if (!member && conn_n_trees (c) >= self->max_trees_per_client)
    return pt_fault_set (f, "limit", "a client may be in at most %u trees", self->max_trees_per_client);

  /* A re-join moves the peer with its subtree; its parents are told by
   * dispatch() after the reply. */
  pt_tree_join (t->tree, c->client_id);
  conn_add_tree (c, t);
  *result = placement_result (t, c->client_id);
  return TRUE;
}

static gboolean
handle_leave (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t)
    return FALSE;
  *result = json_object_new ();
  if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0)
    tree_close (self, t, "source-left");
  else
    tree_remove_member (self, t, c->client_id, "left");
  return TRUE;
}

static gboolean
handle_reconnect (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t)
    return FALSE;
  if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0)
    return pt_fault_set (f, "is-root", "the source of tree \"%s\" has no upstream", t->id);
  pt_tree_reconnect (t->tree, c->client_id);
  *result = placement_result (t, c->client_id);
  return TRUE;
}

/* data is {"sdp":{"type":"offer"|"answer","sdp":STRING}} or
 * {"ice":{"mline":UINT,"candidate":STRING}} */
static gboolean
valid_signal_data (JsonObject *data, Fault *f)
{
  JsonNode *sdp = json_object_get_member (data, "sdp");
  JsonNode *ice = json_object_get_member (data, "ice");
  const char *s;
  gint64 v;
  if ((sdp != NULL) == (ice != NULL) || json_object_get_size (data) != 1)
    return pt_fault_set (f, "bad-request", "\"data\" must hold exactly one of \"sdp\" or \"ice\"");
  if (sdp) {
    if (!JSON_NODE_HOLDS_OBJECT (sdp))
      return pt_fault_set (f, "bad-request", "\"data.sdp\" must be an object");
    JsonObject *o = json_node_get_object (sdp);
    const char *type;
    if (!pt_get_string (o, "type", TRUE, &type, f) || !pt_get_string (o, "sdp", TRUE, &s, f))
      return FALSE;
    if (strcmp (type, "offer") != 0 && strcmp (type, "answer") != 0)
      return pt_fault_set (f, "bad-request", "\"data.sdp.type\" must be \"offer\" or \"answer\"");
  } else {
    if (!JSON_NODE_HOLDS_OBJECT (ice))
      return pt_fault_set (f, "bad-request", "\"data.ice\" must be an object");
    JsonObject *o = json_node_get_object (ice);
    if (!pt_get_uint (o, "mline", TRUE, 1024, &v, f) || !pt_get_string (o, "candidate", TRUE, &s, f))
      return FALSE;
  }
  return TRUE;
}

static gboolean
handle_signal (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  const char *to;
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t || !pt_get_id (msg, "to", TRUE, &to, f))
    return FALSE;
  JsonNode *data = json_object_get_member (msg, "data");
  if (!data || !JSON_NODE_HOLDS_OBJECT (data))
    return pt_fault_set (f, "bad-request", "field \"data\" must be an object");
  if (!valid_signal_data (json_node_get_object (data), f))
    return FALSE;
  /* Only between a child and its assigned parent. */
  if (g_strcmp0 (pt_tree_get_parent (t->tree, to), c->client_id) != 0 &&
      g_strcmp0 (pt_tree_get_parent (t->tree, c->client_id), to) != 0)
    return pt_fault_set (f, "relay-refused",
        "\"%s\" is neither your parent nor your child in tree \"%s\"", to, t->id);
  PtConn *target = pt_server_lookup (self, to);
  if (target && conn_tree (target, t->id) != t)
    target = NULL; /* a departed source's clientId, reused by someone else */
  if (!target)
    return pt_fault_set (f, "client-not-found", "client \"%s\" is not connected", to);

  JsonObject *ev = pt_event_new ("signal", t->id);
  json_object_set_string_member (ev, "from", c->client_id);
  json_object_set_member (ev, "data", json_node_ref (data));
  pt_conn_send (target, ev);
  json_object_unref (ev);
  *result = NULL;
  return TRUE;
}

static const struct {
  const char *type;
  PtHandler handler;
} handlers[] = {
  { "hello", handle_hello },
  { "create", handle_create },
  { "join", handle_join },
  { "leave", handle_leave },
  { "reconnect-upstream", handle_reconnect },
  { "signal", handle_signal },
  { "rejoin", handle_rejoin },
};

/* JsonParser recurses once per nesting level: refuse deep documents before
 * parsing so that a 64 KiB message of brackets cannot exhaust the stack.
 * Brackets inside strings do not count. */
#define MAX_JSON_DEPTH 32
static gboolean
json_depth_ok (const char *text, gsize len)
{
  int depth = 0;
  gboolean in_string = FALSE;
  for (gsize i = 0; i < len; i++) {
    char ch = text[i];
    if (in_string) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_string = FALSE;
    } else if (ch == '"') {
      in_string = TRUE;
    } else if (ch == '{' || ch == '[') {
      if (++depth > MAX_JSON_DEPTH)
        return FALSE;
    } else if (ch == '}' || ch == ']') {
      depth--;
    }
  }
  return TRUE;
}

static void
dispatch (PtConn *c, const char *text, gsize len)
{
  PtServer *self = c->server;
  g_autoptr (GError) error = NULL;
  Fault f = { 0 };
  gint64 id = -1;
  const char *type;
  JsonObject *result = NULL;
  g_autofree char *old_parent = NULL;
  TreeEntry *moved = NULL;

  if (text == NULL || len == 0) {
    /* wslay hands over NULL for an empty message; json-glib refuses it
     * without setting an error */
    pt_fault_set (&f, "bad-json", "message is empty");
    goto fail;
  }
  if (!json_depth_ok (text, len)) {
    pt_fault_set (&f, "bad-json", "message nests deeper than %d levels", MAX_JSON_DEPTH);
    goto fail;
  }
  if (!json_parser_load_from_data (self->parser, text, len, &error)) {
    pt_fault_set (&f, "bad-json", "message is not valid JSON: %s",
        error ? error->message : "unknown parse error");
    goto fail;
  }
  JsonNode *root = json_parser_get_root (self->parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    pt_fault_set (&f, "bad-request", "message must be a JSON object");
    goto fail;
  }
  JsonObject *msg = json_node_get_object (root);
  if (!pt_get_uint (msg, "id", TRUE, (G_GINT64_CONSTANT (1) << 53), &id, &f)) {
    id = -1;
    goto fail;
  }
  if (!pt_get_string (msg, "type", TRUE, &type, &f))
    goto fail;

  PtHandler handler = NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (handlers); i++)
    if (strcmp (handlers[i].type, type) == 0)
      handler = handlers[i].handler;
  if (!handler)
    handler = pt_messaging_find_handler (type);
  if (!handler) {
    pt_fault_set (&f, "unknown-type", "unknown message type \"%.64s\"", type);
    goto fail;
  }
  if (!c->client_id && handler != handle_hello) {
    pt_fault_set (&f, "hello-required", "the first message must be a hello");
    goto fail;
  }

  /* Tree moves tell the other peers after the requester's reply, so the
   * requester always learns its new parent before that parent offers. */
  if (handler == handle_join || handler == handle_reconnect || handler == handle_rejoin) {
    const char *tree_id = NULL;
    Fault ignore = { 0 };
    if (pt_get_id (msg, "treeId", TRUE, &tree_id, &ignore)) {
      moved = g_hash_table_lookup (self->trees, tree_id);
      if (moved)
        old_parent = g_strdup (pt_tree_get_parent (moved->tree, c->client_id));
    }
    pt_fault_clear (&ignore);
  }
  self->req_id = id;
  self->req_deferred = FALSE;
  self->req_silent = FALSE;
  if (!handler (c, msg, &result, &f))
    goto fail;
  /* "noReply": true spares the success reply of a request that completes at
   * once (fire-and-forget emits, publications); errors are always replied. */
  JsonNode *quiet = json_object_get_member (msg, "noReply");
  if (!self->req_deferred && !(quiet && JSON_NODE_HOLDS_VALUE (quiet) &&
          json_node_get_value_type (quiet) == G_TYPE_BOOLEAN && json_node_get_boolean (quiet)))
    pt_conn_reply_ok (c, id, result);
  else if (result)
    json_object_unref (result);
  if (moved && !self->req_silent && pt_tree_contains (moved->tree, c->client_id) &&
      pt_tree_get_parent (moved->tree, c->client_id))
    announce_move (self, moved, c->client_id, old_parent,
        handler == handle_join ? "rejoined" : "reconnected");
  if (self->after_reply) {
    void (*func) (PtServer *, char *) = self->after_reply;
    self->after_reply = NULL;
    func (self, g_steal_pointer (&self->after_reply_arg));
  }
  return;

fail:
  self->after_reply = NULL;
  g_clear_pointer (&self->after_reply_arg, g_free);
  g_debug ("client %s: %s: %s", c->client_id ? c->client_id : "(no hello)", f.code, f.message);
  pt_conn_reply_error (c, id, &f);
  pt_fault_clear (&f);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static gboolean conn_take_token (PtConn *c);

/* Charges one message to @c's rate bucket; an empty bucket disconnects it. */
gboolean
pt_conn_take_token (PtConn *c)
{
  if (!conn_take_token (c)) {
    pt_conn_gone (c, CLOSE_POLICY, "message rate limit exceeded");
    return FALSE;
  }
  return TRUE;
}

static gboolean
conn_take_token (PtConn *c)
{
  PtServer *self = c->server;
  gint64 now = g_get_monotonic_time ();
  c->tokens += (double) (now - c->tokens_at) * self->rate / G_USEC_PER_SEC;
  if (c->tokens > self->burst)
    c->tokens = self->burst;
  c->tokens_at = now;
  if (c->tokens < 1.0)
    return FALSE;
  c->tokens -= 1.0;
  return TRUE;
}

static void
on_ws_message (PtWs *ws, gboolean binary, const guint8 *data, gsize len, gpointer user_data)
{
  PtConn *c = user_data;
  if (c->gone)
    return;
  c->last_seen = g_get_monotonic_time ();
  if (binary) {
    /* Stream data is paced by its credit window, not by the message rate:
     * pt_messaging_binary charges only the other frames. */
    if (!c->client_id)
      pt_conn_gone (c, CLOSE_POLICY, "binary frame before hello");
    else
      pt_messaging_binary (c, data, len);
    return;
  }
  if (!pt_conn_take_token (c))
    return;
  dispatch (c, (const char *) data, len);
}

static void
on_ws_pong (PtWs *ws, gpointer user_data)
{
  PtConn *c = user_data;
  c->last_seen = g_get_monotonic_time ();
}

static void
remove_from_tree (gpointer key, gpointer value, gpointer user_data)
{
  (void) key;
  PtConn *c = user_data;
  TreeEntry *t = value;
  if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0) {
    if (c->server->source_grace)
      tree_source_lost (c->server, t);
    else
      tree_close (c->server, t, "source-disconnected");
  } else {
    tree_remove_member (c->server, t, c->client_id, "disconnected");
  }
}

/* Removes @c from every index and tree (telling its peers), then closes its
 * socket with @code if still open. Idempotent. */
void
pt_conn_gone (PtConn *c, gushort code, const char *reason)
{
  PtServer *self = c->server;
  if (c->gone)
    return;
  c->gone = TRUE;
  if (c->client_id) {
    /* tree_close / tree_remove_member remove entries from c->trees: iterate a copy. */
    g_autoptr (GHashTable) trees = g_hash_table_new (g_str_hash, g_str_equal);
    GHashTableIter it;
    gpointer k, v;
    if (c->trees) {
      g_hash_table_iter_init (&it, c->trees);
      while (g_hash_table_iter_next (&it, &k, &v))
        g_hash_table_insert (trees, k, v);
    }
    /* c->gone makes every send to c a no-op; c stays in clients until the
     * trees are repaired so that lookups of it stay consistent. */
    g_hash_table_foreach (trees, remove_from_tree, c);
    g_clear_pointer (&c->trees, g_hash_table_unref);
    claims_forget_peer (self, c->client_id);
    pt_messaging_conn_gone (c);
    if (g_hash_table_lookup (self->clients, c->client_id) == c)
      g_hash_table_remove (self->clients, c->client_id);
  }
  if (c->closed)
    g_hash_table_remove (self->conns, c); /* frees */
  else
    pt_ws_close (c->ws, code, reason);
}

static void
conn_free (PtConn *c)
{
  g_clear_pointer (&c->acks, g_hash_table_unref);
  g_clear_pointer (&c->rooms, g_hash_table_unref);
  g_clear_pointer (&c->targets, g_hash_table_unref);
  g_clear_pointer (&c->streams, g_hash_table_unref);
  g_clear_pointer (&c->subscriptions, g_hash_table_unref);
  g_clear_pointer (&c->services, g_hash_table_unref);
  pt_ws_free (c->ws);
  if (c->trees)
    g_hash_table_unref (c->trees);
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

static const PtWsCallbacks ws_callbacks = { on_ws_message, on_ws_pong, on_ws_closed };

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

  PtConn *c = g_new0 (PtConn, 1);
  c->server = self;
  c->connected_at = c->last_seen = c->tokens_at = g_get_monotonic_time ();
  c->tokens = self->burst;
  g_hash_table_add (self->conns, c);
  c->ws = pt_ws_new (self->ws_loop, fd, initial->data, initial->len, self->max_message_size,
      &ws_callbacks, c);
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

/* Once a second: reap connections that stopped answering keepalive pings and
 * connections that never said hello. */
static gboolean
sweep (gpointer user_data)
{
  PtServer *self = user_data;
  gint64 now = g_get_monotonic_time ();
  g_autoptr (GPtrArray) doomed = g_ptr_array_new ();
  GHashTableIter it;
  gpointer k;
  g_hash_table_iter_init (&it, self->conns);
  while (g_hash_table_iter_next (&it, &k, NULL)) {
    PtConn *c = k;
    if (c->gone)
      continue;
    /* Only silent clients are pinged, every keepalive-interval. */
    gint64 interval = (gint64) self->keepalive_interval * G_USEC_PER_SEC;
    if (interval && now - c->last_seen >= interval && now - c->last_ping >= interval) {
      pt_ws_ping (c->ws);
      c->last_ping = now;
    }
    if (c->slow || now - c->last_seen > (gint64) self->dead_timeout * G_USEC_PER_SEC ||
        (!c->client_id && now - c->connected_at > HELLO_TIMEOUT_US))
      g_ptr_array_add (doomed, c);
  }
  pt_messaging_sweep (self, now);
  claims_sweep (self, now);
  g_autoptr (GPtrArray) expired = g_ptr_array_new ();
  GHashTableIter ti;
  gpointer tv;
  g_hash_table_iter_init (&ti, self->trees);
  while (g_hash_table_iter_next (&ti, NULL, &tv))
    if (((TreeEntry *) tv)->source_gone && ((TreeEntry *) tv)->grace_deadline <= now)
      g_ptr_array_add (expired, tv);
  for (guint i = 0; i < expired->len; i++)
    tree_close (self, expired->pdata[i], "source-timeout");
  for (guint i = 0; i < doomed->len; i++) {
    PtConn *c = doomed->pdata[i];
    g_debug ("reaping %s", c->client_id ? c->client_id : "(no hello)");
    pt_conn_gone (c, c->slow ? CLOSE_POLICY : c->client_id ? CLOSE_DEAD : CLOSE_POLICY,
        c->slow ? "not reading its messages" : c->client_id ? "keepalive timeout" :
        "no hello in time");
  }
  return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------------------ */
/* Status                                                                   */

static void
status_member (const char *peer, const char *parent, guint depth, gpointer user_data)
{
  gpointer *args = user_data;
  JsonArray *members = args[0];
  TreeEntry *t = args[1];
  JsonObject *m = json_object_new ();
  json_object_set_string_member (m, "id", peer);
  json_object_set_string_member (m, "parent", parent);
  json_object_set_int_member (m, "depth", depth);
  JsonArray *children = json_array_new ();
  g_autofree const char **ids = pt_tree_get_children (t->tree, peer);
  for (guint i = 0; ids[i]; i++)
    json_array_add_string_element (children, ids[i]);
  json_object_set_array_member (m, "children", children);
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
    json_object_set_string_member (o, "id", t->id);
    json_object_set_int_member (o, "k", pt_tree_get_k (t->tree));
    json_object_set_int_member (o, "k1", pt_tree_get_k1 (t->tree));
    json_object_set_string_member (o, "root", pt_tree_get_root (t->tree));
    json_object_set_int_member (o, "size", pt_tree_size (t->tree));
    pt_tree_foreach (t->tree, status_member, args);
    json_object_set_array_member (o, "members", members);
    json_array_add_object_element (trees, o);
  }
  json_object_set_int_member (root, "clients", g_hash_table_size (self->clients));
  json_object_set_array_member (root, "trees", trees);
  return json_node_init_object (json_node_alloc (), root);
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
/* GObject                                                                  */

static void
tree_entry_free (TreeEntry *t)
{
  pt_tree_free (t->tree);
  g_free (t->id);
  g_free (t);
}

static void
pt_server_init (PtServer *self)
{
  self->parser = json_parser_new_immutable ();
  self->conns = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) conn_free, NULL);
  self->clients = g_hash_table_new (g_str_hash, g_str_equal);
  self->trees = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
      (GDestroyNotify) tree_entry_free);
  self->claims = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      (GDestroyNotify) g_ptr_array_unref);
  pt_messaging_init (self);
  pt_messaging_add_builtin (self);
}

/* A client marked slow is no longer routed to: senders get client-not-found
 * rather than a silent drop, until the sweep disconnects it. */
PtConn *
pt_server_lookup (PtServer *self, const char *client_id)
{
  PtConn *c = client_id ? g_hash_table_lookup (self->clients, client_id) : NULL;
  return c && !c->slow ? c : NULL;
}

PtServer *
pt_server_new (void)
{
  return g_object_new (PT_TYPE_SERVER, NULL);
}

gboolean
pt_server_listen (PtServer *self, GError **error)
{
  g_return_val_if_fail (PT_IS_SERVER (self), FALSE);
  g_return_val_if_fail (self->soup == NULL, FALSE);

  g_autoptr (GInetAddress) inet = g_inet_address_new_from_string (self->host);
  if (!inet) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "\"%s\" is not an IP address", self->host);
    return FALSE;
  }
  g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (inet, self->port);
  self->soup = soup_server_new ("server-header", "peertree-server", NULL);
  soup_server_add_handler (self->soup, "/status", on_status, self, NULL);
  soup_server_add_handler (self->soup, NULL, on_http, self, NULL);
  if (!soup_server_listen (self->soup, addr, 0, error)) {
    g_clear_object (&self->soup);
    return FALSE;
  }
  GSList *listeners = soup_server_get_listeners (self->soup);
  g_autoptr (GSocketAddress) local = g_socket_get_local_address (listeners->data, error);
  g_slist_free (listeners);
  if (!local)
    return FALSE;
  self->bound_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));

  self->context = g_main_context_ref_thread_default ();
  self->ws_loop = pt_ws_loop_new (self->context);
  self->sweep = g_timeout_source_new_seconds (1);
  g_source_set_callback (self->sweep, sweep, self, NULL);
  g_source_attach (self->sweep, self->context);
  return TRUE;
}

guint
pt_server_get_port (PtServer *self)
{
  return self->bound_port;
}

char *
pt_server_get_url (PtServer *self)
{
  g_autoptr (GInetAddress) inet = g_inet_address_new_from_string (self->host);
  if (inet && g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("ws://[%s]:%u", self->host, self->bound_port);
  return g_strdup_printf ("ws://%s:%u", self->host, self->bound_port);
}

guint
pt_server_get_n_clients (PtServer *self)
{
  return g_hash_table_size (self->clients);
}

void
pt_server_stop (PtServer *self)
{
  g_return_if_fail (PT_IS_SERVER (self));
  if (self->sweep) {
    g_source_destroy (self->sweep);
    g_clear_pointer (&self->sweep, g_source_unref);
  }

  /* Trees are closed without telling anyone: the sockets are closing too. */
  g_hash_table_remove_all (self->trees);
  g_hash_table_remove_all (self->claims);
  pt_messaging_reset (self);
  GHashTableIter it;
  gpointer k;
  g_hash_table_iter_init (&it, self->conns);
  while (g_hash_table_iter_next (&it, &k, NULL)) {
    PtConn *c = k;
    g_clear_pointer (&c->trees, g_hash_table_unref);
    c->gone = TRUE;
    /* Queued now, written by pt_ws_free() as it closes the socket. */
    pt_ws_close (c->ws, CLOSE_GOING_AWAY, "server shutting down");
  }
  g_hash_table_remove_all (self->clients);
  g_hash_table_remove_all (self->conns);
  g_clear_pointer (&self->ws_loop, pt_ws_loop_free);
  if (self->soup) {
    soup_server_disconnect (self->soup);
    g_clear_object (&self->soup);
  }
  g_clear_pointer (&self->context, g_main_context_unref);
}

static void
pt_server_finalize (GObject *object)
{
  PtServer *self = PT_SERVER (object);
  pt_server_stop (self);
  pt_messaging_finalize (self);
  g_hash_table_unref (self->claims);
  g_hash_table_unref (self->trees);
  g_hash_table_unref (self->clients);
  g_hash_table_unref (self->conns);
  g_object_unref (self->parser);
  g_free (self->host);
  G_OBJECT_CLASS (pt_server_parent_class)->finalize (object);
}

static guint *
uint_field (PtServer *self, guint prop_id)
{
  switch (prop_id) {
    case PROP_PORT: return &self->port;
    case PROP_K: return &self->k;
    case PROP_K1: return &self->k1;
    case PROP_MAX_MESSAGE_SIZE: return &self->max_message_size;
    case PROP_KEEPALIVE_INTERVAL: return &self->keepalive_interval;
    case PROP_DEAD_TIMEOUT: return &self->dead_timeout;
    case PROP_RATE: return &self->rate;
    case PROP_BURST: return &self->burst;
    case PROP_MAX_CLIENTS: return &self->max_clients;
    case PROP_MAX_TREES_PER_CLIENT: return &self->max_trees_per_client;
    case PROP_MAX_BUFFERED: return &self->max_buffered;
    case PROP_SOURCE_GRACE: return &self->source_grace;
    default: return NULL;
  }
}

static void
pt_server_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  PtServer *self = PT_SERVER (object);
  guint *field = uint_field (self, prop_id);
  if (field)
    *field = g_value_get_uint (value);
  else if (prop_id == PROP_HOST) {
    g_free (self->host);
    self->host = g_value_dup_string (value);
  } else if (prop_id == PROP_ALLOW_TAKEOVER)
    self->allow_takeover = g_value_get_boolean (value);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
pt_server_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  PtServer *self = PT_SERVER (object);
  guint *field = uint_field (self, prop_id);
  if (prop_id == PROP_PORT && self->bound_port)
    g_value_set_uint (value, self->bound_port);
  else if (field)
    g_value_set_uint (value, *field);
  else if (prop_id == PROP_HOST)
    g_value_set_string (value, self->host);
  else if (prop_id == PROP_ALLOW_TAKEOVER)
    g_value_set_boolean (value, self->allow_takeover);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static GParamSpec *
uint_prop (const char *name, const char *blurb, guint min, guint max, guint def)
{
  return g_param_spec_uint (name, name, blurb, min, max, def,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
}

static void
pt_server_class_init (PtServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->finalize = pt_server_finalize;
  object_class->set_property = pt_server_set_property;
  object_class->get_property = pt_server_get_property;

  props[PROP_HOST] = g_param_spec_string ("host", "Host",
      "IP address to listen on (127.0.0.1, ::1, 0.0.0.0, ::)", "127.0.0.1",
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_PORT] = uint_prop ("port", "TCP port to listen on; 0 picks a free one (read back "
      "the bound port after listening)", 0, 65535, 8645);
  props[PROP_K] = uint_prop ("k", "Maximum children of a viewer in a tree, and the highest k a "
      "client may request", 1, 64, 4);
  props[PROP_K1] = uint_prop ("k1", "Maximum children of a tree's source, and the highest k1 a "
      "client may request", 1, 256, 10);
  props[PROP_MAX_MESSAGE_SIZE] = uint_prop ("max-message-size", "Largest accepted WebSocket "
      "message in bytes; a larger one closes the connection (code 1009)", 1024, 16 << 20, 64 * 1024);
  props[PROP_KEEPALIVE_INTERVAL] = uint_prop ("keepalive-interval", "Seconds of silence after "
      "which a client is pinged, and between pings while it stays silent (0 = no pings)", 0, 3600,
      3);
  props[PROP_DEAD_TIMEOUT] = uint_prop ("dead-timeout", "Seconds of silence (no message, no pong) "
      "after which a client is considered dead and removed; keep it above twice "
      "keepalive-interval", 1, 86400, 8);
  props[PROP_RATE] = uint_prop ("rate", "Messages per second a client may send on average; "
      "beyond its burst the connection is closed (code 1008)", 1, G_MAXINT, 1000);
  props[PROP_BURST] = uint_prop ("burst", "Messages a client may send at once above its rate",
      1, G_MAXINT, 2000);
  props[PROP_MAX_CLIENTS] = uint_prop ("max-clients", "Most simultaneous connections; further "
      "ones are closed with code 1013", 1, G_MAXINT, 100000);
  props[PROP_MAX_TREES_PER_CLIENT] = uint_prop ("max-trees-per-client", "Most trees one client "
      "may create or join", 1, 4096, 16);
  props[PROP_MAX_BUFFERED] = uint_prop ("max-buffered", "Bytes the server queues to a client "
      "whose socket does not drain before it disconnects it (code 1008)", 64 * 1024, G_MAXINT,
      4 * 1024 * 1024);
  props[PROP_SOURCE_GRACE] = uint_prop ("source-grace", "Seconds a tree outlives the "
      "disconnection of its source, waiting for it to come back with the tree's secret (0: the "
      "tree closes at once); also how long positions reported after a restart wait", 0, 3600, 10);
  props[PROP_ALLOW_TAKEOVER] = g_param_spec_boolean ("allow-takeover", "Allow takeover",
      "Let a new connection take over a connected clientId when it presents the secret the "
      "first connection registered with", FALSE,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

gboolean
pt_server_load_config (PtServer *self, const char *path, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, error))
    return FALSE;
  g_auto (GStrv) keys = g_key_file_get_keys (kf, "server", NULL, NULL);
  for (guint i = 0; keys && keys[i]; i++) {
    GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (self), keys[i]);
    if (!pspec) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
          "%s: unknown key \"%s\" in [server]", path, keys[i]);
      return FALSE;
    }
    g_autoptr (GError) local = NULL;
    if (pspec->value_type == G_TYPE_STRING) {
      g_autofree char *v = g_key_file_get_string (kf, "server", keys[i], &local);
      if (v)
        g_object_set (self, keys[i], v, NULL);
    } else if (pspec->value_type == G_TYPE_BOOLEAN) {
      gboolean v = g_key_file_get_boolean (kf, "server", keys[i], &local);
      if (!local)
        g_object_set (self, keys[i], v, NULL);
    } else {
      GParamSpecUInt *u = G_PARAM_SPEC_UINT (pspec);
      guint64 v = g_key_file_get_uint64 (kf, "server", keys[i], &local);
      if (!local && (v < u->minimum || v > u->maximum))
        g_set_error (&local, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
            "must be between %u and %u", u->minimum, u->maximum);
      if (!local)
        g_object_set (self, keys[i], (guint) v, NULL);
    }
    if (local) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
          "%s: key \"%s\": %s", path, keys[i], local->message);
      return FALSE;
    }
  }
  return TRUE;
}
