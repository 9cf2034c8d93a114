/* peertree — k-ary tree placement, pure data structure, no I/O.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-tree.h"

G_DEFINE_QUARK (pt-tree-error-quark, pt_tree_error)

typedef struct _PtNode PtNode;
struct _PtNode {
  char *id;
  PtNode *parent;
  GPtrArray *children; /* PtNode*, insertion order, not owning */
  gboolean leaf;       /* takes no children */
  gint max_children;   /* declared: -1 none (k or k1 applies) */
  guint max_upload_kbps; /* declared upload budget: 0 unknown */
};

struct _PtTree {
  guint k, k1;
  guint bitrate_kbps;  /* the stream's, as the source declares it: 0 unknown */
  PtNode *root;
  GHashTable *nodes; /* id (owned by node) -> PtNode* (owned) */
};

static void
node_free (PtNode *node)
{
  g_ptr_array_unref (node->children);
  g_free (node->id);
  g_free (node);
}

static PtNode *
node_new (const char *id)
{
  PtNode *node = g_new0 (PtNode, 1);
  node->id = g_strdup (id);
  node->children = g_ptr_array_new ();
  node->max_children = -1;
  return node;
}

PtTree *
pt_tree_new (const char *root_id, guint k, guint k1)
{
  g_return_val_if_fail (root_id != NULL, NULL);
  g_return_val_if_fail (k >= 1 && k1 >= 1, NULL);

  PtTree *tree = g_new0 (PtTree, 1);
  tree->k = k;
  tree->k1 = k1;
  tree->nodes = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) node_free);
  tree->root = node_new (root_id);
  g_hash_table_insert (tree->nodes, tree->root->id, tree->root);
  return tree;
}

void
pt_tree_free (PtTree *tree)
{
  if (!tree)
    return;
  g_hash_table_unref (tree->nodes);
  g_free (tree);
}

guint pt_tree_get_k (const PtTree *tree) { return tree->k; }
guint pt_tree_get_k1 (const PtTree *tree) { return tree->k1; }
const char *pt_tree_get_root (const PtTree *tree) { return tree->root->id; }
guint pt_tree_size (const PtTree *tree) { return g_hash_table_size (tree->nodes); }

static PtNode *
lookup (const PtTree *tree, const char *peer)
{
  return peer ? g_hash_table_lookup (tree->nodes, peer) : NULL;
}

gboolean
pt_tree_contains (const PtTree *tree, const char *peer)
{
  return lookup (tree, peer) != NULL;
}

const char *
pt_tree_get_parent (const PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  return node && node->parent ? node->parent->id : NULL;
}

guint
pt_tree_get_depth (const PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  if (!node)
    return G_MAXUINT;
  guint depth = 0;
  for (; node->parent; node = node->parent)
    depth++;
  return depth;
}

guint
pt_tree_get_n_children (const PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  return node ? node->children->len : 0;
}

const char **
pt_tree_get_children (const PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  guint n = node ? node->children->len : 0;
  const char **out = g_new0 (const char *, n + 1);
  for (guint i = 0; i < n; i++)
    out[i] = ((PtNode *) node->children->pdata[i])->id;
  return out;
}

/* The hard limit: k1 for the root, k for the others (what pt_tree_check
 * holds every member to). */
static guint
hard_capacity (const PtTree *tree, const PtNode *node)
{
  return node == tree->root ? tree->k1 : tree->k;
}

/* How many children @node may have: the hard limit, lowered by what it
 * declared (max-children, 0 for a leaf) and by its upload budget when the
 * stream's bitrate is known (each child costs one copy of the stream). */
static guint
capacity (const PtTree *tree, const PtNode *node)
{
  guint cap = hard_capacity (tree, node);
  if (node->leaf)
    return 0;
  if (node->max_children >= 0)
    cap = MIN (cap, (guint) node->max_children);
  if (node->max_upload_kbps > 0 && tree->bitrate_kbps > 0)
    cap = MIN (cap, node->max_upload_kbps / tree->bitrate_kbps);
  return cap;
}

static gboolean
has_room (const PtTree *tree, const PtNode *node)
{
  return node->children->len < capacity (tree, node);
}

gboolean
pt_tree_set_leaf (PtTree *tree, const char *peer, gboolean leaf)
{
  PtNode *node = lookup (tree, peer);
  if (!node || node == tree->root || (leaf && node->children->len > 0))
    return FALSE;
  node->leaf = leaf;
  return TRUE;
}

gboolean
pt_tree_is_leaf (const PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  return node && node != tree->root && capacity (tree, node) == 0;
}

gboolean
pt_tree_set_capacity (PtTree *tree, const char *peer, gint max_children, guint max_upload_kbps)
{
  PtNode *node = lookup (tree, peer);
  if (!node)
    return FALSE;
  node->max_children = MAX (max_children, -1);
  node->max_upload_kbps = max_upload_kbps;
  return TRUE;
}

guint
pt_tree_get_capacity (const PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  return node ? capacity (tree, node) : 0;
}

gint
pt_tree_get_max_children (const PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  return node ? node->max_children : -1;
}

guint
pt_tree_get_max_upload_kbps (const PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  return node ? node->max_upload_kbps : 0;
}

void
pt_tree_set_bitrate_kbps (PtTree *tree, guint bitrate_kbps)
{
  tree->bitrate_kbps = bitrate_kbps;
}

guint
pt_tree_get_bitrate_kbps (const PtTree *tree)
{
  return tree->bitrate_kbps;
}

/* Breadth-first search for the first node with a free slot, skipping @avoid
 * (its children are still searched). The node being placed is detached, so
 * its own subtree is unreachable from the root and can never be chosen.
 * Leaves have no slot: their subtrees are empty. */
static PtNode *
find_slot (const PtTree *tree, const PtNode *avoid)
{
  g_autoptr (GPtrArray) queue = g_ptr_array_new ();
  g_ptr_array_add (queue, tree->root);
  for (guint head = 0; head < queue->len; head++) {
    PtNode *node = queue->pdata[head];
    if (node != avoid && has_room (tree, node))
      return node;
    for (guint i = 0; i < node->children->len; i++)
      g_ptr_array_add (queue, node->children->pdata[i]);
  }
  return NULL;
}

static void
detach (PtNode *node)
{
  if (node->parent) {
    gboolean found = g_ptr_array_remove (node->parent->children, node);
    g_assert (found);
    node->parent = NULL;
  }
}

static void
attach (PtNode *parent, PtNode *node)
{
  g_assert (node->parent == NULL);
  node->parent = parent;
  g_ptr_array_add (parent->children, node);
}

/* Detaches @node and attaches it at the first free slot, avoiding @avoid if
 * any other slot exists. NULL if there is none (leaves take no children, so
 * a tree can be full); @node is then left detached. */
static PtNode *
place (PtTree *tree, PtNode *node, PtNode *avoid)
{
  detach (node);
  PtNode *parent = find_slot (tree, avoid);
  if (!parent && avoid)
    parent = find_slot (tree, NULL);
  if (parent)
    attach (parent, node);
  return parent;
}

const char *
pt_tree_join (PtTree *tree, const char *peer)
{
  g_return_val_if_fail (peer != NULL, NULL);
  PtNode *node = lookup (tree, peer);
  if (node == tree->root)
    return NULL;
  if (!node) {
    PtNode *parent = find_slot (tree, NULL);
    if (!parent)
      return NULL;
    node = node_new (peer);
    g_hash_table_insert (tree->nodes, node->id, node);
    attach (parent, node);
    return parent->id;
  }
  /* A member's own slot is free once it is detached: there is always one. */
  PtNode *parent = place (tree, node, NULL);
  g_assert (parent != NULL);
  return parent->id;
}

const char *
pt_tree_reconnect (PtTree *tree, const char *peer)
{
  PtNode *node = lookup (tree, peer);
  if (!node || node == tree->root)
    return NULL;
  PtNode *parent = place (tree, node, node->parent);
  g_assert (parent != NULL);
  return parent->id;
}

gboolean
pt_tree_attach (PtTree *tree, const char *peer, const char *parent)
{
  PtNode *p = lookup (tree, parent);
  if (!p || lookup (tree, peer) || !has_room (tree, p))
    return FALSE;
  PtNode *node = node_new (peer);
  g_hash_table_insert (tree->nodes, node->id, node);
  attach (p, node);
  return TRUE;
}

gboolean
pt_tree_rename_root (PtTree *tree, const char *new_id)
{
  if (lookup (tree, new_id))
    return g_strcmp0 (new_id, tree->root->id) == 0;
  g_hash_table_steal (tree->nodes, tree->root->id);
  g_free (tree->root->id);
  tree->root->id = g_strdup (new_id);
  g_hash_table_insert (tree->nodes, tree->root->id, tree->root);
  return TRUE;
}

/* Frees @node and its subtree, appending their ids to @dropped (if not NULL). */
static void
drop_subtree (PtTree *tree, PtNode *node, GPtrArray *dropped)
{
  for (guint i = 0; i < node->children->len; i++)
    drop_subtree (tree, node->children->pdata[i], dropped);
  if (dropped)
    g_ptr_array_add (dropped, g_strdup (node->id));
  g_hash_table_remove (tree->nodes, node->id);
}

static void place_children (PtTree *tree, PtNode *node, GArray *moves, GPtrArray *dropped);

gboolean
pt_tree_remove_full (PtTree *tree, const char *peer, GArray *moves, GPtrArray *dropped)
{
  PtNode *node = lookup (tree, peer);
  if (!node || node == tree->root)
    return FALSE;

  detach (node);
  place_children (tree, node, moves, dropped);
  g_hash_table_remove (tree->nodes, peer);
  return TRUE;
}

gboolean
pt_tree_demote (PtTree *tree, const char *peer, GArray *moves, GPtrArray *dropped)
{
  PtNode *node = lookup (tree, peer);
  if (!node || node == tree->root)
    return FALSE;
  node->leaf = TRUE;
  place_children (tree, node, moves, dropped);
  return TRUE;
}

/* Detaches every child of @node and places each again (with its subtree)
 * elsewhere; see pt_tree_remove_full. */
static void
place_children (PtTree *tree, PtNode *node, GArray *moves, GPtrArray *dropped)
{
  /* Detach every orphan first so none of them can be placed under another. */
  g_autoptr (GPtrArray) orphans = g_ptr_array_copy (node->children, NULL, NULL);
  for (guint i = 0; i < orphans->len; i++)
    ((PtNode *) orphans->pdata[i])->parent = NULL;
  g_ptr_array_set_size (node->children, 0);

  for (guint i = 0; i < orphans->len; i++) {
    PtNode *orphan = orphans->pdata[i];
    PtNode *parent = place (tree, orphan, NULL);
    if (!parent) {
      /* No member left that may take it: it leaves with its subtree. */
      drop_subtree (tree, orphan, dropped);
      continue;
    }
    if (moves) {
      PtMove move = { orphan->id, parent->id };
      g_array_append_val (moves, move);
    }
  }
}

gboolean
pt_tree_shed (PtTree *tree, const char *peer, PtMove *move)
{
  PtNode *node = lookup (tree, peer);
  if (!node || node->children->len == 0)
    return FALSE;
  guint n = node->children->len;
  gint old_max = node->max_children;
  PtNode *child = node->children->pdata[n - 1];
  /* Full at n - 1 first, so that the search cannot give the child back. */
  node->max_children = n - 1;
  detach (child);
  PtNode *parent = find_slot (tree, NULL);
  if (!parent) {
    /* Nobody else has room: it stays (last again, as it was); @peer takes
     * no more children than it has. */
    attach (node, child);
    node->max_children = old_max >= 0 ? MIN (old_max, (gint) n) : (gint) n;
    return FALSE;
  }
  attach (parent, child);
  if (move) {
    move->peer = child->id;
    move->parent = parent->id;
  }
  return TRUE;
}

gboolean
pt_tree_remove (PtTree *tree, const char *peer, GArray *moves)
{
  return pt_tree_remove_full (tree, peer, moves, NULL);
}

void
pt_tree_foreach (const PtTree *tree, PtTreeFunc func, gpointer user_data)
{
  g_autoptr (GPtrArray) queue = g_ptr_array_new ();
  g_autoptr (GArray) depths = g_array_new (FALSE, FALSE, sizeof (guint));
  guint zero = 0;
  g_ptr_array_add (queue, tree->root);
  g_array_append_val (depths, zero);
  for (guint head = 0; head < queue->len; head++) {
    PtNode *node = queue->pdata[head];
    guint depth = g_array_index (depths, guint, head);
    func (node->id, node->parent ? node->parent->id : NULL, depth, user_data);
    for (guint i = 0; i < node->children->len; i++) {
      guint d = depth + 1;
      g_ptr_array_add (queue, node->children->pdata[i]);
      g_array_append_val (depths, d);
    }
  }
}

gboolean
pt_tree_check (const PtTree *tree, GError **error)
{
  if (tree->root->parent) {
    g_set_error (error, PT_TREE_ERROR, 0, "root %s has a parent", tree->root->id);
    return FALSE;
  }
  g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
  g_autoptr (GPtrArray) queue = g_ptr_array_new ();
  g_ptr_array_add (queue, tree->root);
  g_hash_table_add (seen, tree->root);
  for (guint head = 0; head < queue->len; head++) {
    PtNode *node = queue->pdata[head];
    if (lookup (tree, node->id) != node) {
      g_set_error (error, PT_TREE_ERROR, 0, "%s reachable but not indexed", node->id);
      return FALSE;
    }
    /* Declared limits are soft: a member that lowers its own keeps the
     * children it could not shed (nobody else had room); k and k1 are not. */
    if (node->children->len > hard_capacity (tree, node)) {
      g_set_error (error, PT_TREE_ERROR, 0, "%s has %u children, limit %u",
          node->id, node->children->len, hard_capacity (tree, node));
      return FALSE;
    }
    if (node->leaf && node->children->len > 0) {
      g_set_error (error, PT_TREE_ERROR, 0, "leaf %s has %u children", node->id,
          node->children->len);
      return FALSE;
    }
    for (guint i = 0; i < node->children->len; i++) {
      PtNode *child = node->children->pdata[i];
      if (child->parent != node) {
        g_set_error (error, PT_TREE_ERROR, 0, "%s listed under %s but its parent is %s",
            child->id, node->id, child->parent ? child->parent->id : "(none)");
        return FALSE;
      }
      if (!g_hash_table_add (seen, child)) {
        /* Reached twice: either listed twice or a cycle. */
        g_set_error (error, PT_TREE_ERROR, 0, "%s reached twice (cycle or duplicate)",
            child->id);
        return FALSE;
      }
      g_ptr_array_add (queue, child);
    }
  }
  if (queue->len != g_hash_table_size (tree->nodes)) {
    g_set_error (error, PT_TREE_ERROR, 0,
        "%u peers indexed but %u reachable from the root", g_hash_table_size (tree->nodes), queue->len);
    return FALSE;
  }
  return TRUE;
}
