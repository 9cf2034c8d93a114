/* peertree-server — the tree requests: create, join, leave,
 * reconnect-upstream, signal, rejoin; the notifications they cause; the
 * source's grace period; and rebuilding the trees after a server restart
 * from the positions members report (claims).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The placement itself is pt-tree.c's; this file keeps the index of trees
 * (self->trees, and each client's c->trees) and tells the members.
 */
#include "pt-server-private.h"

#include <string.h>

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
  JsonObject *ev = pt_event_new (added ? PT_EV_DOWNSTREAM_ADDED : PT_EV_DOWNSTREAM_REMOVED, t->id);
  json_object_set_string_member (ev, PT_F_CHILD, child);
  if (reason)
    json_object_set_string_member (ev, PT_F_REASON, reason);
  pt_send_event_to (self, parent, ev);
  pt_dashboard_tree_changed (self, t->id);
}

static void
notify_upstream (PtServer *self, TreeEntry *t, const char *peer, const char *reason)
{
  JsonObject *ev = pt_event_new (PT_EV_UPSTREAM, t->id);
  json_object_set_string_member (ev, PT_F_PARENT, pt_tree_get_parent (t->tree, peer));
  json_object_set_int_member (ev, PT_F_DEPTH, pt_tree_get_depth (t->tree, peer));
  json_object_set_string_member (ev, PT_F_REASON, reason);
  pt_send_event_to (self, peer, ev);
  pt_metrics_count_move (self, reason);
  pt_dashboard_tree_changed (self, t->id);
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
  JsonObject *ev = pt_event_new (PT_EV_TREE_CLOSED, t->id);
  json_object_set_string_member (ev, PT_F_REASON, reason);
  pt_send_event_to (self, peer, ev);
}

/* Closes a tree: every member (the root included) is told and forgets it. */
static void
tree_close (PtServer *self, TreeEntry *t, const char *reason)
{
  gpointer args[3] = { self, t, (gpointer) reason };
  g_debug ("closing tree %s (%s)", t->id, reason);
  self->metrics.trees_closed++;
  pt_dashboard_tree_changed (self, t->id);
  pt_tree_foreach (t->tree, close_member, args);
  g_hash_table_remove (self->trees, t->id);
}

/* @member leaves @t's bookkeeping: its connection's tree list and its
 * per-member tables (reports, link stats, overload rate limit). */
static void
forget_member (PtServer *self, TreeEntry *t, const char *member)
{
  conn_forget_tree (self, member, t);
  if (t->reports)
    g_hash_table_remove (t->reports, member);
  if (t->link_stats)
    g_hash_table_remove (t->link_stats, member);
  if (t->overload_at)
    g_hash_table_remove (t->overload_at, member);
}

/* An orphan no member could take (the others full, or leaves): out of the
 * tree with its subtree, and told so. */
static void
drop_member (PtServer *self, TreeEntry *t, const char *member)
{
  forget_member (self, t, member);
  JsonObject *ev = pt_event_new (PT_EV_TREE_CLOSED, t->id);
  json_object_set_string_member (ev, PT_F_REASON, PT_REASON_NO_SLOT);
  pt_send_event_to (self, member, ev);
}

/* After @t's placement moved members (each with its subtree) and dropped
 * those no member could take: the moved are told their new parent, which is
 * told of them; the dropped are told the tree is closed for them. */
static void
announce_placement (PtServer *self, TreeEntry *t, GArray *moves, GPtrArray *dropped,
    const char *reason)
{
  for (guint i = 0; i < moves->len; i++) {
    PtMove *m = &g_array_index (moves, PtMove, i);
    notify_upstream (self, t, m->peer, reason);
    notify_downstream (self, t, m->parent, m->peer, TRUE, NULL);
  }
  for (guint i = 0; i < dropped->len; i++)
    drop_member (self, t, dropped->pdata[i]);
}

/* Removes a non-root @peer from @t, telling its parent and re-parenting its
 * children (each keeps its subtree). */
static void
tree_remove_member (PtServer *self, TreeEntry *t, const char *peer, const char *reason)
{
  g_autofree char *parent = g_strdup (pt_tree_get_parent (t->tree, peer));
  g_autoptr (GArray) moves = g_array_new (FALSE, FALSE, sizeof (PtMove));
  g_autoptr (GPtrArray) dropped = g_ptr_array_new_with_free_func (g_free);
  forget_member (self, t, peer);
  pt_dashboard_tree_changed (self, t->id);
  if (!pt_tree_remove_full (t->tree, peer, moves, dropped))
    return;
  notify_downstream (self, t, parent, peer, FALSE, reason);
  announce_placement (self, t, moves, dropped, PT_REASON_PARENT_LEFT);
}

/* What a member declares it can relay (join, rejoin, capacity). */
typedef struct {
  gint max_children;        /* -1: not said (k applies); 0: a leaf */
  guint max_upload_kbps;    /* 0: unknown */
} Capacity;

#define CAPACITY_UNSAID { -1, 0 }

/* Reads the optional "leaf", "maxChildren" and "maxUploadKbps" of @msg
 * (leaf: join only) into @cap. */
static gboolean
read_capacity (JsonObject *msg, gboolean with_leaf, Capacity *cap, PtFault *f)
{
  gboolean leaf = FALSE;
  gint64 max_children, upload;
  if (with_leaf && !pt_get_bool (msg, PT_F_LEAF, FALSE, &leaf, f))
    return FALSE;
  if (!pt_get_uint (msg, PT_F_MAX_CHILDREN, FALSE, PT_MAX_DECLARED_CHILDREN, &max_children, f) ||
      !pt_get_uint (msg, PT_F_MAX_UPLOAD_KBPS, FALSE, PT_MAX_UPLOAD_KBPS, &upload, f))
    return FALSE;
  JsonNode *n = json_object_get_member (msg, PT_F_MAX_CHILDREN);
  gboolean said = n && !JSON_NODE_HOLDS_NULL (n);
  if (leaf && said && max_children > 0)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "\"leaf\": true and \"maxChildren\": %"
        G_GINT64_FORMAT " contradict each other", max_children);
  cap->max_children = leaf ? 0 : said ? (gint) max_children : -1;
  cap->max_upload_kbps = upload;
  return TRUE;
}

/* A member whose token does not let it relay in @t is a leaf there whatever
 * it declares; otherwise it takes what it declared in @cap. (A member that
 * already has children keeps them.) */
static void
apply_capacity (TreeEntry *t, PtConn *c, const Capacity *cap)
{
  pt_tree_set_leaf (t->tree, c->client_id, !pt_rights_can_relay (c, t->id));
  pt_tree_set_capacity (t->tree, c->client_id, cap->max_children, cap->max_upload_kbps);
}

static gboolean
tree_full (TreeEntry *t, PtFault *f)
{
  return pt_fault_set (f, PT_ERR_LIMIT, "tree \"%s\" has no free slot: its members are full or "
      "may not relay", t->id);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */

static JsonObject *
placement_result (TreeEntry *t, const char *peer)
{
  JsonObject *res = json_object_new ();
  json_object_set_string_member (res, PT_F_TREE_ID, t->id);
  json_object_set_string_member (res, PT_F_PARENT, pt_tree_get_parent (t->tree, peer));
  json_object_set_int_member (res, PT_F_DEPTH, pt_tree_get_depth (t->tree, peer));
  if (t->data_key)
    json_object_set_string_member (res, PT_F_DATA_KEY, t->data_key);
  return res;
}

/* dataKey (create, a source's rejoin): base64 of an Ed25519 public key. */
static gboolean
read_data_key (JsonObject *msg, const char **out, PtFault *f)
{
  if (!pt_get_string (msg, PT_F_DATA_KEY, FALSE, out, f))
    return FALSE;
  if (!*out)
    return TRUE;
  gsize len = strlen (*out), n = 0;
  /* 32 bytes are 44 base64 characters */
  if (len == 4 * ((PT_DATA_KEY_LEN + 2) / 3)) {
    g_autofree guchar *raw = g_base64_decode (*out, &n);
    g_autofree char *again = g_base64_encode (raw, n);
    if (n == PT_DATA_KEY_LEN && g_str_equal (again, *out))
      return TRUE;
  }
  return pt_fault_set (f, PT_ERR_BAD_REQUEST, "\"%s\" must be the base64 of a %d-byte Ed25519 "
      "public key", PT_F_DATA_KEY, PT_DATA_KEY_LEN);
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
  JsonObject *ev = pt_event_new (PT_EV_SOURCE_LOST, t->id);
  json_object_set_int_member (ev, PT_F_GRACE, self->source_grace);
  pt_send_event_to (self, peer, ev);
}

/* The source disconnected: the tree keeps its shape for source-grace seconds,
 * waiting for it (or a process with the tree's secret) to come back. */
static void
tree_source_lost (PtServer *self, TreeEntry *t)
{
  gpointer args[2] = { self, t };
  t->source_gone = TRUE;
  t->grace_deadline = pt_now () + (gint64) self->source_grace * G_USEC_PER_SEC;
  g_debug ("tree %s lost its source; waiting %u s", t->id, self->source_grace);
  self->metrics.source_losses++;
  pt_dashboard_tree_changed (self, t->id);
  pt_tree_foreach (t->tree, source_lost_member, args);
}

/* The source came back and has no links any more: it offers each of its
 * children a new link. Under a new clientId (@renamed) the children are also
 * told their parent changed; under the same one they keep it and just see an
 * offer with a new session. */
static void
announce_root_children (PtServer *self, const char *tree_id, gboolean renamed)
{
  TreeEntry *t = g_hash_table_lookup (self->trees, tree_id);
  if (!t)
    return;
  const char *root = pt_tree_get_root (t->tree);
  g_autofree const char **children = pt_tree_get_children (t->tree, root);
  for (guint i = 0; children[i]; i++) {
    if (renamed)
      notify_upstream (self, t, children[i], PT_REASON_SOURCE_RETURNED);
    notify_downstream (self, t, root, children[i], TRUE, NULL);
  }
}

static void
announce_new_root (PtServer *self, gpointer tree_id)
{
  announce_root_children (self, tree_id, TRUE);
}

static void
announce_children_to_root (PtServer *self, gpointer tree_id)
{
  announce_root_children (self, tree_id, FALSE);
}

/* create (or rejoin as source) of an existing tree: allowed to the source
 * that comes back within the grace period, or after a server restart, with
 * the tree's secret. */
static void
send_data_key (const char *peer, const char *parent, guint depth, gpointer user_data)
{
  (void) depth;
  gpointer *args = user_data;
  PtServer *self = args[0];
  TreeEntry *t = args[1];
  if (parent == NULL || !t->data_key)
    return;                     /* the source */
  JsonObject *ev = pt_event_new (PT_EV_DATA_KEY, t->id);
  json_object_set_string_member (ev, PT_F_DATA_KEY, t->data_key);
  pt_send_event_to (self, peer, ev);
}

/* After the reply to a returning source with a new key: every member. */
static void
announce_data_key (PtServer *self, gpointer tree_id)
{
  TreeEntry *t = g_hash_table_lookup (self->trees, tree_id);
  gpointer args[2] = { self, t };
  if (t)
    pt_tree_foreach (t->tree, send_data_key, args);
}

static gboolean
tree_reclaim (PtRequest *req, PtConn *c, TreeEntry *t, const char *secret, const char *data_key,
    JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *root = pt_tree_get_root (t->tree);
  if (!t->source_gone) {
    if (g_strcmp0 (root, c->client_id) != 0)
      return pt_fault_set (f, PT_ERR_TREE_EXISTS, "tree \"%s\" already exists", t->id);
  } else {
    guint8 hash[32];
    if (secret)
      pt_hash_secret (secret, hash);
    if (!t->has_secret || !secret || !pt_secret_equal (hash, t->secret_hash))
      return pt_fault_set (f, PT_ERR_TREE_EXISTS,
          "tree \"%s\" exists and waits for its source; reclaiming it needs its secret", t->id);
    if (g_strcmp0 (root, c->client_id) != 0 && pt_tree_contains (t->tree, c->client_id))
      return pt_fault_set (f, PT_ERR_BAD_REQUEST, "a member of tree \"%s\" cannot become its source",
          t->id);
    if (conn_n_trees (c) >= self->max_trees_per_client)
      return pt_fault_set (f, PT_ERR_LIMIT, "a client may be in at most %u trees",
          self->max_trees_per_client);
    gboolean renamed = g_strcmp0 (root, c->client_id) != 0;
    pt_tree_rename_root (t->tree, c->client_id);
    t->source_gone = FALSE;
    conn_add_tree (c, t);
    g_debug ("tree %s reclaimed by %s", t->id, c->client_id);
    pt_dashboard_tree_changed (self, t->id);
    /* A rejoin under the same clientId comes from a client whose links may
     * still be up (its connection to the server dropped): nothing to
     * renegotiate. A create (a restarted source process) or a new clientId
     * means new links to every child. */
    /* a restarted source signs with a new key (and counts from 1 again):
     * the members are told before its links come up */
    if (data_key && g_strcmp0 (data_key, t->data_key) != 0) {
      g_free (t->data_key);
      t->data_key = g_strdup (data_key);
      pt_request_after_reply (req, announce_data_key, g_strdup (t->id), g_free);
    }
    if (renamed)
      pt_request_after_reply (req, announce_new_root, g_strdup (t->id), g_free);
    else if (!req->rejoin)
      pt_request_after_reply (req, announce_children_to_root, g_strdup (t->id), g_free);
  }
  *result = json_object_new ();
  json_object_set_string_member (*result, PT_F_TREE_ID, t->id);
  json_object_set_int_member (*result, PT_F_K, pt_tree_get_k (t->tree));
  json_object_set_int_member (*result, PT_F_K1, pt_tree_get_k1 (t->tree));
  json_object_set_boolean_member (*result, PT_F_RECLAIMED, TRUE);
  if (t->data_key)
    json_object_set_string_member (*result, PT_F_DATA_KEY, t->data_key);
  return TRUE;
}

/* ---- Rebuilding after a server restart ---- */

typedef struct {
  char *peer, *parent;
  GHashTable *children;   /* what the peer reported of its own children, or NULL */
  Capacity capacity;      /* what it declared */
  gint64 deadline;
} Claim;

static void
claim_free (Claim *cl)
{
  g_free (cl->peer);
  g_free (cl->parent);
  g_clear_pointer (&cl->children, g_hash_table_unref);
  g_free (cl);
}

/* The optional "children" of a rejoin: a set of ids, or NULL when absent. */
static gboolean
read_children (JsonObject *msg, GHashTable **out, PtFault *f)
{
  JsonArray *list;
  *out = NULL;
  if (!pt_get_array (msg, PT_F_CHILDREN, FALSE, &list, f))
    return FALSE;
  if (!list)
    return TRUE;
  if (json_array_get_length (list) > PT_MAX_REPORTED_CHILDREN)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "at most %d children", PT_MAX_REPORTED_CHILDREN);
  g_autoptr (GHashTable) set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < json_array_get_length (list); i++) {
    JsonNode *n = json_array_get_element (list, i);
    const char *id = JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING ?
        json_node_get_string (n) : NULL;
    if (!id || !pt_valid_id (id))
      return pt_fault_set (f, PT_ERR_INVALID_ID, "\"children\" must hold client ids");
    g_hash_table_add (set, g_strdup (id));
  }
  *out = g_steal_pointer (&set);
  return TRUE;
}

/* Keeps @member's report of its children (transfer full; NULL: none). */
static void
record_report (TreeEntry *t, const char *member, GHashTable *children)
{
  if (!children)
    return;
  if (!t->reports)
    t->reports = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
        (GDestroyNotify) g_hash_table_unref);
  g_hash_table_replace (t->reports, g_strdup (member), children);
}

/* Whether @parent, in its own report, lists @child: only then is a reported
 * position taken as it is, without telling the parent (V6: a client could
 * otherwise squat any slot it names and talk to that parent unannounced). */
static gboolean
parent_confirms (TreeEntry *t, const char *parent, const char *child)
{
  GHashTable *set = t->reports ? g_hash_table_lookup (t->reports, parent) : NULL;
  return set && g_hash_table_contains (set, child);
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
  JsonObject *ev = pt_event_new (PT_EV_PLACED, t->id);
  json_object_set_string_member (ev, PT_F_PARENT, pt_tree_get_parent (t->tree, peer));
  json_object_set_int_member (ev, PT_F_DEPTH, pt_tree_get_depth (t->tree, peer));
  pt_send_event_to (self, peer, ev);
  pt_dashboard_tree_changed (self, t->id);
}

/* Attaches every claim whose parent is in the tree and confirms it, as
 * claimed (silently: the media link is already there); then places like a
 * join, and announces, those whose parent is back but full or does not list
 * them; until none makes progress. With @force, the rest (parent not back)
 * are placed like a join too. */
static void
claims_settle (PtServer *self, TreeEntry *t, gboolean force)
{
  GPtrArray *list = claims_of (self, t->id, FALSE);
  if (!list)
    return;
  gboolean progress = TRUE;
  while (progress) {
    progress = FALSE;
    /* confirmed ones first, so that the others cannot take their places */
    for (guint i = 0; i < list->len;) {
      Claim *cl = list->pdata[i];
      PtConn *c = pt_conn_lookup (self, cl->peer);
      if (!c || pt_tree_contains (t->tree, cl->peer)) {
        g_ptr_array_remove_index_fast (list, i);
        continue;
      }
      if (parent_confirms (t, cl->parent, cl->peer) &&
          pt_tree_attach (t->tree, cl->peer, cl->parent)) {
        apply_capacity (t, c, &cl->capacity);
        conn_add_tree (c, t);
        record_report (t, cl->peer, g_steal_pointer (&cl->children));
        send_placed (self, t, cl->peer);
        g_ptr_array_remove_index_fast (list, i);
        progress = TRUE;
        continue;
      }
      i++;
    }
    if (progress)
      continue;
    for (guint i = 0; i < list->len;) {
      Claim *cl = list->pdata[i];
      PtConn *c = pt_conn_lookup (self, cl->peer);
      if (force || pt_tree_contains (t->tree, cl->parent)) {
        if (!pt_tree_join (t->tree, cl->peer)) {
          JsonObject *ev = pt_event_new (PT_EV_TREE_CLOSED, t->id);
          json_object_set_string_member (ev, PT_F_REASON, PT_REASON_NO_SLOT);
          pt_send_event_to (self, cl->peer, ev);
          g_ptr_array_remove_index_fast (list, i);
          progress = TRUE;
          break;
        }
        apply_capacity (t, c, &cl->capacity);
        conn_add_tree (c, t);
        record_report (t, cl->peer, g_steal_pointer (&cl->children));
        notify_upstream (self, t, cl->peer, PT_REASON_REBUILT);
        notify_downstream (self, t, pt_tree_get_parent (t->tree, cl->peer), cl->peer, TRUE, NULL);
        g_ptr_array_remove_index_fast (list, i);
        progress = TRUE;
        break;    /* one at a time: it may confirm others */
      }
      i++;
    }
  }
  if (list->len == 0)
    g_hash_table_remove (self->claims, t->id);
}

static void
claims_process (PtServer *self, gpointer tree_id)
{
  TreeEntry *t = g_hash_table_lookup (self->trees, tree_id);
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
      JsonObject *ev = pt_event_new (PT_EV_TREE_CLOSED, l->data);
      json_object_set_string_member (ev, PT_F_REASON, PT_REASON_SOURCE_NOT_BACK);
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

/* ---- Moves ---- */

typedef struct {
  char *tree_id, *peer, *old_parent;
  const char *reason;
  gboolean link_dropped;        /* the peer gave its link up (reconnect-upstream) */
} Move;

static void
move_free (Move *m)
{
  g_free (m->tree_id);
  g_free (m->peer);
  g_free (m->old_parent);
  g_free (m);
}

/* After @peer moved away from @old_parent (NULL if new), tells both parents. */
static void
announce_move (PtServer *self, TreeEntry *t, const char *peer, const char *old_parent,
    const char *reason, gboolean link_dropped)
{
  const char *parent = pt_tree_get_parent (t->tree, peer);
  /* the same parent again: unless the peer gave its link up, nothing
   * changed; if it did, the parent is told as for any move (the child
   * left, a child came), and offers a new link */
  if (old_parent && g_strcmp0 (old_parent, parent) == 0 && !link_dropped)
    return;
  if (old_parent)
    notify_downstream (self, t, old_parent, peer, FALSE, reason);
  notify_downstream (self, t, parent, peer, TRUE, NULL);
}

static void
announce_moved (PtServer *self, gpointer data)
{
  Move *m = data;
  TreeEntry *t = g_hash_table_lookup (self->trees, m->tree_id);
  if (t && pt_tree_contains (t->tree, m->peer) && pt_tree_get_parent (t->tree, m->peer))
    announce_move (self, t, m->peer, m->old_parent, m->reason, m->link_dropped);
}

/* Called before the requester moves in @t: tree moves tell the other peers
 * after the requester's reply, so the requester always learns its new parent
 * before that parent offers. */
static void
announce_move_after_reply (PtRequest *req, TreeEntry *t, const char *reason,
    gboolean link_dropped)
{
  Move *m = g_new0 (Move, 1);
  m->link_dropped = link_dropped;
  m->tree_id = g_strdup (t->id);
  m->peer = g_strdup (req->conn->client_id);
  m->old_parent = g_strdup (pt_tree_get_parent (t->tree, m->peer));
  m->reason = reason;
  pt_request_after_reply (req, announce_moved, m, (GDestroyNotify) move_free);
}

static gboolean handle_create (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result,
    PtFault *f);

/* rejoin {treeId, parent} — a member re-registering its position after the
 * server restarted (or its connection dropped);
 * rejoin {treeId, source: true, k?, k1?, secret?} — the source doing so. */
static gboolean
handle_rejoin (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *tree_id, *parent;
  gboolean source;
  Capacity cap = CAPACITY_UNSAID;
  g_autoptr (GHashTable) children = NULL;
  if (!pt_get_bool (msg, PT_F_SOURCE, FALSE, &source, f) || !read_capacity (msg, FALSE, &cap, f))
    return FALSE;
  if (!pt_get_id (msg, PT_F_TREE_ID, TRUE, &tree_id, f) || !read_children (msg, &children, f))
    return FALSE;
  if (source) {
    req->rejoin = TRUE;
    if (!handle_create (req, c, msg, result, f))
      return FALSE;
    TreeEntry *t = g_hash_table_lookup (self->trees, tree_id);
    if (t)
      record_report (t, c->client_id, g_steal_pointer (&children));
    return TRUE;
  }
  if (!pt_get_id (msg, PT_F_PARENT, TRUE, &parent, f))
    return FALSE;
  if (g_strcmp0 (parent, c->client_id) == 0)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "a peer cannot be its own parent");

  TreeEntry *t = g_hash_table_lookup (self->trees, tree_id);
  /* The media links already exist: parents are told nothing unless the
   * server has to place the peer elsewhere. */
  if (t && pt_tree_contains (t->tree, c->client_id)) {
    if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0)
      return pt_fault_set (f, PT_ERR_IS_ROOT, "you are the source of tree \"%s\"", tree_id);
    apply_capacity (t, c, &cap);
    *result = placement_result (t, c->client_id);
    return TRUE;
  }
  /* Silently under that parent only if the parent's own report lists us. */
  if (conn_n_trees (c) >= self->max_trees_per_client)
    return pt_fault_set (f, PT_ERR_LIMIT, "a client may be in at most %u trees", self->max_trees_per_client);
  if (t && pt_tree_contains (t->tree, parent) && parent_confirms (t, parent, c->client_id) &&
      pt_tree_attach (t->tree, c->client_id, parent)) {
    apply_capacity (t, c, &cap);
    conn_add_tree (c, t);
    record_report (t, c->client_id, g_steal_pointer (&children));
    *result = placement_result (t, c->client_id);
    pt_dashboard_tree_changed (self, t->id);
    /* Reports waiting for this peer (its children) can be attached now. */
    pt_request_after_reply (req, claims_process, g_strdup (t->id), g_free);
    return TRUE;
  }
  if (t && pt_tree_contains (t->tree, parent)) {
    /* Parent full, or it does not list us: placed like a join; the new
     * parent is told after the reply. */
    announce_move_after_reply (req, t, PT_REASON_RECONNECTED, FALSE);
    if (!pt_tree_join (t->tree, c->client_id))
      return tree_full (t, f);
    apply_capacity (t, c, &cap);
    conn_add_tree (c, t);
    record_report (t, c->client_id, g_steal_pointer (&children));
    *result = placement_result (t, c->client_id);
    pt_request_after_reply (req, claims_process, g_strdup (t->id), g_free);
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
    return pt_fault_set (f, PT_ERR_LIMIT, "a client may be in at most %u trees",
        self->max_trees_per_client);
  GPtrArray *list = claims_of (self, tree_id, TRUE);
  Claim *cl = g_new0 (Claim, 1);
  cl->peer = g_strdup (c->client_id);
  cl->parent = g_strdup (parent);
  cl->children = g_steal_pointer (&children);
  cl->capacity = cap;
  cl->deadline = pt_now () + (gint64) MAX (self->source_grace, 1) * G_USEC_PER_SEC;
  g_ptr_array_add (list, cl);
  *result = json_object_new ();
  json_object_set_string_member (*result, PT_F_TREE_ID, tree_id);
  json_object_set_boolean_member (*result, PT_F_PENDING, TRUE);
  return TRUE;
}

static gboolean
handle_create (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *tree_id;
  gint64 k, k1;

  const char *secret;
  gint64 bitrate;
  if (!pt_get_id (msg, PT_F_TREE_ID, FALSE, &tree_id, f) ||
      !pt_get_uint (msg, PT_F_K, FALSE, self->k, &k, f) ||
      !pt_get_uint (msg, PT_F_K1, FALSE, self->k1, &k1, f) ||
      !pt_get_string (msg, PT_F_SECRET, FALSE, &secret, f) ||
      !pt_get_uint (msg, PT_F_BITRATE_KBPS, FALSE, PT_MAX_BITRATE_KBPS, &bitrate, f))
    return FALSE;
  const char *data_key;
  if (!read_data_key (msg, &data_key, f))
    return FALSE;
  if (secret && (strlen (secret) == 0 || strlen (secret) > PT_SECRET_MAX_LEN))
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "secret must be 1 to %d bytes", PT_SECRET_MAX_LEN);
  TreeEntry *existing = tree_id ? g_hash_table_lookup (self->trees, tree_id) : NULL;
  if (existing) {
    if (!tree_reclaim (req, c, existing, secret, data_key, result, f))
      return FALSE;
    if (bitrate)
      pt_tree_set_bitrate_kbps (existing->tree, bitrate);
    return TRUE;
  }
  if (conn_n_trees (c) >= self->max_trees_per_client)
    return pt_fault_set (f, PT_ERR_LIMIT, "a client may be in at most %u trees", self->max_trees_per_client);
  if (!pt_limits_tree_allowed (self, c->ip, f))
    return FALSE;
  g_autofree char *picked = NULL;
  if (!tree_id) {
    do {
      g_free (picked);
      picked = pt_random_id ("t-");
    } while (g_hash_table_contains (self->trees, picked));
    /* Checked here: the rights of the request could not know the id. */
    if (!pt_rights_can_publish (c, picked))
      return pt_fault_set (f, PT_ERR_FORBIDDEN, "your token does not allow publishing a tree "
          "without a treeId (the server's ids match \"t-*\")");
  }

  TreeEntry *t = g_new0 (TreeEntry, 1);
  t->server = self;
  t->ip = g_strdup (c->ip);
  pt_limits_tree_added (self, t->ip);
  if (secret) {
    pt_hash_secret (secret, t->secret_hash);
    t->has_secret = TRUE;
  }
  t->id = tree_id ? g_strdup (tree_id) : g_steal_pointer (&picked);
  t->data_key = g_strdup (data_key);
  t->tree = pt_tree_new (c->client_id, k ? k : self->k, k1 ? k1 : self->k1);
  pt_tree_set_bitrate_kbps (t->tree, bitrate);
  g_hash_table_insert (self->trees, t->id, t);
  pt_cluster_claim (self, "pt:tree:", t->id);
  conn_add_tree (c, t);
  self->metrics.trees_created++;
  pt_dashboard_tree_changed (self, t->id);

  *result = json_object_new ();
  json_object_set_string_member (*result, PT_F_TREE_ID, t->id);
  json_object_set_int_member (*result, PT_F_K, pt_tree_get_k (t->tree));
  json_object_set_int_member (*result, PT_F_K1, pt_tree_get_k1 (t->tree));
  if (t->data_key)
    json_object_set_string_member (*result, PT_F_DATA_KEY, t->data_key);
  /* Members that reported this tree after a server restart take their places. */
  pt_request_after_reply (req, claims_process, g_strdup (t->id), g_free);
  return TRUE;
}

static TreeEntry *
lookup_tree (PtConn *c, JsonObject *msg, gboolean must_be_member, PtFault *f)
{
  const char *tree_id;
  if (!pt_get_id (msg, PT_F_TREE_ID, TRUE, &tree_id, f))
    return NULL;
  TreeEntry *t = g_hash_table_lookup (c->server->trees, tree_id);
  if (!t) {
    pt_fault_set (f, PT_ERR_TREE_NOT_FOUND, "tree \"%s\" does not exist", tree_id);
    return NULL;
  }
  /* Membership is the connection's, not the clientId's: during a source's
   * grace period another connection may say hello with the departed
   * source's clientId, and must not act as the source. */
  if (must_be_member && conn_tree (c, t->id) != t) {
    pt_fault_set (f, PT_ERR_NOT_MEMBER, "you are not a member of tree \"%s\"", tree_id);
    return NULL;
  }
  return t;
}

static gboolean
handle_join (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  Capacity cap = CAPACITY_UNSAID;
  TreeEntry *t = lookup_tree (c, msg, FALSE, f);
  if (!t || !read_capacity (msg, TRUE, &cap, f))
    return FALSE;
  if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0)
    return pt_fault_set (f, PT_ERR_IS_ROOT, "you are the source of tree \"%s\"", t->id);
  gboolean member = pt_tree_contains (t->tree, c->client_id);
  if (!member && conn_n_trees (c) >= self->max_trees_per_client)
    return pt_fault_set (f, PT_ERR_LIMIT, "a client may be in at most %u trees", self->max_trees_per_client);

  /* A re-join moves the peer with its subtree; its parents are told after
   * the reply. */
  announce_move_after_reply (req, t, PT_REASON_REJOINED, FALSE);
  if (!pt_tree_join (t->tree, c->client_id))
    return tree_full (t, f);
  /* (a member that already has children keeps them, leaf or not) */
  apply_capacity (t, c, &cap);
  conn_add_tree (c, t);
  if (member)
    pt_metrics_count_move (self, PT_REASON_REJOINED);
  else
    self->metrics.joins++;
  *result = placement_result (t, c->client_id);
  return TRUE;
}

static gboolean
handle_leave (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t)
    return FALSE;
  *result = json_object_new ();
  if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0)
    tree_close (self, t, PT_REASON_SOURCE_LEFT);
  else
    tree_remove_member (self, t, c->client_id, PT_REASON_LEFT);
  return TRUE;
}

static gboolean
handle_reconnect (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t)
    return FALSE;
  if (g_strcmp0 (pt_tree_get_root (t->tree), c->client_id) == 0)
    return pt_fault_set (f, PT_ERR_IS_ROOT, "the source of tree \"%s\" has no upstream", t->id);
  announce_move_after_reply (req, t, PT_REASON_RECONNECTED, TRUE);
  pt_tree_reconnect (t->tree, c->client_id);
  pt_metrics_count_move (c->server, PT_REASON_RECONNECTED);
  *result = placement_result (t, c->client_id);
  return TRUE;
}

/* report-relay {treeId, relay, reason}: a member's parent forwarded data
 * that fails the source's signature or was delivered already. Only one's own
 * parent can be reported (the server cannot see the data: a false report
 * costs the reporter its parent and the parent its children, nothing more).
 * The relay keeps its place but becomes a leaf; its children are placed
 * again elsewhere, each with its subtree, as for a relay that disconnected. */
static gboolean
handle_report_relay (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  (void) req;
  PtServer *self = c->server;
  const char *relay, *reason;
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t || !pt_get_id (msg, PT_F_RELAY, TRUE, &relay, f) ||
      !pt_get_string (msg, PT_F_REASON, TRUE, &reason, f))
    return FALSE;
  if (!g_str_equal (reason, PT_RELAY_FORGED) && !g_str_equal (reason, PT_RELAY_REPLAYED))
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "\"%s\" must be \"%s\" or \"%s\"", PT_F_REASON,
        PT_RELAY_FORGED, PT_RELAY_REPLAYED);
  if (g_strcmp0 (pt_tree_get_parent (t->tree, c->client_id), relay) != 0)
    return pt_fault_set (f, PT_ERR_RELAY_REFUSED, "\"%s\" is not your parent in tree \"%s\"",
        relay, t->id);
  *result = json_object_new ();
  /* the source signs: it cannot forward forged data, only lose its children */
  if (g_strcmp0 (pt_tree_get_root (t->tree), relay) == 0)
    return TRUE;
  g_message ("tree %s: %s reports that its parent %s relayed %s data; %s relays no more",
      t->id, c->client_id, relay, reason, relay);
  g_autoptr (GArray) moves = g_array_new (FALSE, FALSE, sizeof (PtMove));
  g_autoptr (GPtrArray) dropped = g_ptr_array_new_with_free_func (g_free);
  g_autofree const char **ids = pt_tree_get_children (t->tree, relay);
  g_auto (GStrv) children = g_strdupv ((char **) ids);
  pt_tree_demote (t->tree, relay, moves, dropped);
  for (guint i = 0; children && children[i]; i++)
    notify_downstream (self, t, relay, children[i], FALSE, PT_REASON_RELAY_DISTRUSTED);
  announce_placement (self, t, moves, dropped, PT_REASON_RELAY_DISTRUSTED);
  return TRUE;
}

/* data is {"sdp":{"type":"offer"|"answer","sdp":STRING}} or
 * {"ice":{"mline":UINT,"candidate":STRING}} */
static gboolean
valid_signal_data (JsonObject *data, PtFault *f)
{
  JsonNode *sdp = json_object_get_member (data, PT_F_SDP);
  JsonNode *ice = json_object_get_member (data, PT_F_ICE);
  const char *s;
  gint64 v;
  if ((sdp != NULL) == (ice != NULL) || json_object_get_size (data) != 1)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "\"data\" must hold exactly one of \"sdp\" or \"ice\"");
  if (sdp) {
    if (!JSON_NODE_HOLDS_OBJECT (sdp))
      return pt_fault_set (f, PT_ERR_BAD_REQUEST, "\"data.sdp\" must be an object");
    JsonObject *o = json_node_get_object (sdp);
    const char *type;
    if (!pt_get_string (o, PT_F_SDP_TYPE, TRUE, &type, f) || !pt_get_string (o, PT_F_SDP, TRUE, &s, f))
      return FALSE;
    if (strcmp (type, PT_SDP_OFFER) != 0 && strcmp (type, PT_SDP_ANSWER) != 0)
      return pt_fault_set (f, PT_ERR_BAD_REQUEST, "\"data.sdp.type\" must be \"offer\" or \"answer\"");
  } else {
    if (!JSON_NODE_HOLDS_OBJECT (ice))
      return pt_fault_set (f, PT_ERR_BAD_REQUEST, "\"data.ice\" must be an object");
    JsonObject *o = json_node_get_object (ice);
    if (!pt_get_uint (o, PT_F_MLINE, TRUE, PT_MAX_MLINE, &v, f) || !pt_get_string (o, PT_F_CANDIDATE, TRUE, &s, f))
      return FALSE;
  }
  return TRUE;
}

static gboolean
handle_signal (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *to;
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t || !pt_get_id (msg, PT_F_TO, TRUE, &to, f))
    return FALSE;
  JsonObject *data;
  if (!pt_get_object (msg, PT_F_DATA, TRUE, &data, f))
    return FALSE;
  if (!valid_signal_data (data, f))
    return FALSE;
  /* Only between a child and its assigned parent. */
  if (g_strcmp0 (pt_tree_get_parent (t->tree, to), c->client_id) != 0 &&
      g_strcmp0 (pt_tree_get_parent (t->tree, c->client_id), to) != 0)
    return pt_fault_set (f, PT_ERR_RELAY_REFUSED,
        "\"%s\" is neither your parent nor your child in tree \"%s\"", to, t->id);
  PtConn *target = pt_conn_lookup (self, to);
  if (target && conn_tree (target, t->id) != t)
    target = NULL; /* a departed source's clientId, reused by someone else */
  if (!target)
    return pt_fault_set (f, PT_ERR_CLIENT_NOT_FOUND, "client \"%s\" is not connected", to);

  JsonObject *ev = pt_event_new (PT_EV_SIGNAL, t->id);
  json_object_set_string_member (ev, PT_F_FROM, c->client_id);
  json_object_set_object_member (ev, PT_F_DATA, json_object_ref (data));
  pt_conn_relay (target, ev);
  json_object_unref (ev);
  *result = NULL;
  return TRUE;
}

/* report {treeId, childCount?, bitrateKbps?, lossPercent?, rttMs?,
 * framesPerSecond?}: kept as the member's latest, for the dashboard. */
static gboolean
handle_report (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  PtReport r = PT_REPORT_INIT;
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t || !pt_report_read (msg, &r, f))
    return FALSE;
  if (!t->link_stats)
    t->link_stats = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  PtLinkStats *st = g_hash_table_lookup (t->link_stats, c->client_id);
  gint64 now = pt_now ();
  if (st && now - st->at < (gint64) PT_REPORT_MIN_INTERVAL_MS * 1000)
    return pt_fault_set (f, PT_ERR_LIMIT, "one report a second per tree: %" G_GINT64_FORMAT
        " ms since the last", (now - st->at) / 1000);
  if (!st) {
    st = g_new0 (PtLinkStats, 1);
    g_hash_table_insert (t->link_stats, g_strdup (c->client_id), st);
  }
  st->report = r;
  st->at = now;
  self->metrics.reports++;
  pt_dashboard_report (self, t->id, c->client_id);
  return TRUE;
}

/* Moves @peer's newest child elsewhere (see pt_tree_shed) and tells the three
 * of them; the moved child's id (owned by the tree) or NULL if it stayed. */
static const char *
shed_one (PtServer *self, TreeEntry *t, const char *peer)
{
  PtMove move;
  if (!pt_tree_shed (t->tree, peer, &move))
    return NULL;
  g_debug ("tree %s: %s sheds %s to %s", t->id, peer, move.peer, move.parent);
  notify_downstream (self, t, peer, move.peer, FALSE, PT_REASON_SHED);
  notify_upstream (self, t, move.peer, PT_REASON_SHED);
  notify_downstream (self, t, move.parent, move.peer, TRUE, NULL);
  return move.peer;
}

/* capacity {treeId, maxChildren?, maxUploadKbps?, bitrateKbps?, overloaded?}
 * — a member changes what it declared (absent fields keep their values; its
 * children beyond its new room are moved, newest first), the source the
 * stream's bitrate; "overloaded": its uplink cannot carry its children, the
 * newest one moves and its max-children drops to what it keeps. */
static gboolean
handle_capacity (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  (void) req;
  PtServer *self = c->server;
  gint64 bitrate;
  gboolean overloaded;
  Capacity cap = CAPACITY_UNSAID;
  TreeEntry *t = lookup_tree (c, msg, TRUE, f);
  if (!t || !read_capacity (msg, FALSE, &cap, f) ||
      !pt_get_uint (msg, PT_F_BITRATE_KBPS, FALSE, PT_MAX_BITRATE_KBPS, &bitrate, f) ||
      !pt_get_bool (msg, PT_F_OVERLOADED, FALSE, &overloaded, f))
    return FALSE;
  const char *me = c->client_id;
  gboolean is_root = g_strcmp0 (pt_tree_get_root (t->tree), me) == 0;
  if (json_object_has_member (msg, PT_F_BITRATE_KBPS) && !is_root)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "only the source of tree \"%s\" declares "
        "its bitrate", t->id);
  gint64 now = pt_now ();
  gint64 *last = t->overload_at ? g_hash_table_lookup (t->overload_at, me) : NULL;
  if (overloaded && last && now - *last < PT_OVERLOAD_INTERVAL * G_USEC_PER_SEC)
    return pt_fault_set (f, PT_ERR_LIMIT, "at most one overload report every %d s",
        PT_OVERLOAD_INTERVAL);

  if (json_object_has_member (msg, PT_F_BITRATE_KBPS))
    pt_tree_set_bitrate_kbps (t->tree, bitrate);
  gint max_children = pt_tree_get_max_children (t->tree, me);
  guint upload = pt_tree_get_max_upload_kbps (t->tree, me);
  if (cap.max_children >= 0)
    max_children = cap.max_children;
  if (json_object_has_member (msg, PT_F_MAX_UPLOAD_KBPS))
    upload = cap.max_upload_kbps;
  pt_tree_set_capacity (t->tree, me, max_children, upload);

  JsonArray *moved = json_array_new ();
  if (overloaded) {
    if (!t->overload_at)
      t->overload_at = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    g_hash_table_replace (t->overload_at, g_strdup (me), g_memdup2 (&now, sizeof now));
    const char *child = shed_one (self, t, me);
    if (child)
      json_array_add_string_element (moved, child);
  } else {
    /* children beyond the room just declared (or left by a new bitrate):
     * newest first, as long as someone else has room */
    guint room = pt_tree_get_capacity (t->tree, me);
    while (pt_tree_get_n_children (t->tree, me) > room) {
      const char *child = shed_one (self, t, me);
      if (!child)
        break;
      json_array_add_string_element (moved, child);
    }
    /* (shedding pinned max-children to the count kept; what was declared stays) */
    pt_tree_set_capacity (t->tree, me, max_children, upload);
  }
  *result = json_object_new ();
  json_object_set_string_member (*result, PT_F_TREE_ID, t->id);
  json_object_set_int_member (*result, PT_F_MAX_CHILDREN, pt_tree_get_capacity (t->tree, me));
  json_object_set_array_member (*result, PT_F_MOVED, moved);
  return TRUE;
}


/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

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
      tree_close (c->server, t, PT_REASON_SOURCE_DISCONNECTED);
  } else {
    tree_remove_member (c->server, t, c->client_id, PT_REASON_DISCONNECTED);
  }
}

/* @c left: its trees are repaired (or wait for their source), its claims dropped. */
static void
trees_conn_gone (PtConn *c)
{
  /* tree_close / tree_remove_member remove entries from c->trees: iterate a copy. */
  g_autoptr (GHashTable) trees = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter it;
  gpointer k, v;
  if (c->trees) {
    g_hash_table_iter_init (&it, c->trees);
    while (g_hash_table_iter_next (&it, &k, &v))
      g_hash_table_insert (trees, k, v);
  }
  g_hash_table_foreach (trees, remove_from_tree, c);
  g_clear_pointer (&c->trees, g_hash_table_unref);
  claims_forget_peer (c->server, c->client_id);
}

/* Expired claims, and trees whose source did not come back in time. */
static void
trees_sweep (PtServer *self, gint64 now)
{
  claims_sweep (self, now);
  g_autoptr (GPtrArray) expired = g_ptr_array_new ();
  GHashTableIter ti;
  gpointer tv;
  g_hash_table_iter_init (&ti, self->trees);
  while (g_hash_table_iter_next (&ti, NULL, &tv))
    if (((TreeEntry *) tv)->source_gone && ((TreeEntry *) tv)->grace_deadline <= now)
      g_ptr_array_add (expired, tv);
  for (guint i = 0; i < expired->len; i++)
    tree_close (self, expired->pdata[i], PT_REASON_SOURCE_TIMEOUT);
}

/* Trees are closed without telling anyone: the sockets are closing too. */
static void
trees_reset (PtServer *self)
{
  g_hash_table_remove_all (self->trees);
  g_hash_table_remove_all (self->claims);
  GHashTableIter it;
  gpointer k;
  g_hash_table_iter_init (&it, self->conns);
  while (g_hash_table_iter_next (&it, &k, NULL))
    g_clear_pointer (&((PtConn *) k)->trees, g_hash_table_unref);
}

static void
trees_finalize (PtServer *self)
{
  g_hash_table_unref (self->claims);
  g_hash_table_unref (self->trees);
}

static void
tree_entry_free (TreeEntry *t)
{
  pt_limits_tree_removed (t->server, t->ip);
  g_free (t->ip);
  g_free (t->data_key);
  pt_tree_free (t->tree);
  g_clear_pointer (&t->reports, g_hash_table_unref);
  g_clear_pointer (&t->link_stats, g_hash_table_unref);
  g_clear_pointer (&t->overload_at, g_hash_table_unref);
  g_free (t->id);
  g_free (t);
}

void
pt_tree_handlers_init (PtServer *self)
{
  static const PtHooks hooks = {
    .conn_gone = trees_conn_gone,
    .sweep = trees_sweep,
    .reset = trees_reset,
    .finalize = trees_finalize,
  };
  self->trees = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
      (GDestroyNotify) tree_entry_free);
  self->claims = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      (GDestroyNotify) g_ptr_array_unref);
  pt_server_add_handler (self, PT_REQ_CREATE, handle_create, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_JOIN, handle_join, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_LEAVE, handle_leave, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_RECONNECT_UPSTREAM, handle_reconnect, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_SIGNAL, handle_signal, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_CAPACITY, handle_capacity, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_REJOIN, handle_rejoin, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_REPORT, handle_report, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_REPORT_RELAY, handle_report_relay, PT_HANDLER_DEFAULT);
  pt_server_add_hooks (self, &hooks);
}
