/* peertree — k-ary tree placement, pure data structure, no I/O.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A tree has one root (the source) which takes up to k1 children; every other
 * peer takes up to k. A peer is placed under the root while the root has a
 * free slot, otherwise under the first peer in breadth-first order (children
 * in insertion order) with fewer than k children — exactly peer-tree's rule.
 *
 * A member's room can be lower than k (or k1) by what it declared: a leaf
 * takes none, max-children caps the count, and an upload budget caps it at
 * budget / bitrate once the tree knows its stream's bitrate. Breadth-first
 * order is kept among the members that have room.
 *
 * Unlike peer-tree, moving a peer (re-join, reconnect, re-parenting of an
 * orphan) always detaches it first, so its own subtree can never be chosen:
 * no peer is ever its own ancestor, and no ghost entry survives a move.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PtTree PtTree;

#define PT_TREE_ERROR (pt_tree_error_quark ())
GQuark pt_tree_error_quark (void);

/* One re-parenting decided by the tree: @peer now hangs under @parent. */
typedef struct {
  const char *peer;   /* owned by the tree */
  const char *parent; /* owned by the tree */
} PtMove;

PtTree *pt_tree_new (const char *root_id, guint k, guint k1);
void pt_tree_free (PtTree *tree);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PtTree, pt_tree_free)

guint pt_tree_get_k (const PtTree *tree);
guint pt_tree_get_k1 (const PtTree *tree);
const char *pt_tree_get_root (const PtTree *tree);
guint pt_tree_size (const PtTree *tree);
gboolean pt_tree_contains (const PtTree *tree, const char *peer);
/* NULL for the root or an unknown peer. */
const char *pt_tree_get_parent (const PtTree *tree, const char *peer);
/* 0 for the root; G_MAXUINT for an unknown peer. O(depth). */
guint pt_tree_get_depth (const PtTree *tree, const char *peer);
guint pt_tree_get_n_children (const PtTree *tree, const char *peer);
/* Child ids in insertion order (NULL-terminated, owned by the tree's
 * peers: valid until the next mutation). Free the array with g_free. */
const char **pt_tree_get_children (const PtTree *tree, const char *peer);

/* A leaf takes no children: placement never puts a peer under it (a viewer
 * whose token does not allow it to relay, or that asked not to). FALSE if
 * @peer is unknown, the root, or (to become a leaf) has children. */
gboolean pt_tree_set_leaf (PtTree *tree, const char *peer, gboolean leaf);
/* Whether @peer (not the root) takes no children now: a leaf, max-children
 * 0, or an upload budget below one copy of the stream. */
gboolean pt_tree_is_leaf (const PtTree *tree, const char *peer);

/* What @peer declared (join, rejoin, capacity): @max_children (-1: none, k
 * or k1 applies; 0: a leaf) and @max_upload_kbps (0: unknown). Children it
 * has beyond the new room keep their places (pt_tree_shed moves one).
 * FALSE if @peer is unknown. */
gboolean pt_tree_set_capacity (PtTree *tree, const char *peer, gint max_children,
    guint max_upload_kbps);
gint pt_tree_get_max_children (const PtTree *tree, const char *peer);
guint pt_tree_get_max_upload_kbps (const PtTree *tree, const char *peer);
/* The children @peer may have now: min (k or k1, max-children,
 * max-upload-kbps / bitrate-kbps when both are known); 0 for a leaf or an
 * unknown peer. */
guint pt_tree_get_capacity (const PtTree *tree, const char *peer);
/* The stream's bitrate, as the source declares it (0: unknown, then upload
 * budgets are not used). */
void pt_tree_set_bitrate_kbps (PtTree *tree, guint bitrate_kbps);
guint pt_tree_get_bitrate_kbps (const PtTree *tree);

/* @peer is overloaded: its max-children becomes its child count less one and
 * its newest child moves (with its subtree) to the first member in
 * breadth-first order with room, filled into @move. FALSE if it has no
 * child, or if no other member has room: then the child stays and @peer's
 * max-children becomes (at most) its child count, so it gets no more. */
gboolean pt_tree_shed (PtTree *tree, const char *peer, PtMove *move);

/* Adds @peer (new) or moves it (already a member; its subtree moves with it).
 * Returns the parent id (owned by the tree), or NULL if @peer is the root or
 * is new and no member has a free slot (leaves take none: a tree can be full). */
const char *pt_tree_join (PtTree *tree, const char *peer);

/* Moves @peer (and its subtree) to a new parent, avoiding its current parent
 * unless that is the only free slot. NULL if @peer is the root or unknown. */
const char *pt_tree_reconnect (PtTree *tree, const char *peer);

/* Attaches a new @peer directly under @parent (used to rebuild a tree from
 * what its members report). FALSE if @peer is already a member, @parent is
 * not one, or @parent has no free slot. Cannot create a cycle: @peer is new. */
gboolean pt_tree_attach (PtTree *tree, const char *peer, const char *parent);

/* Gives the root a new id (a source that reclaims its tree under another
 * clientId). FALSE if @new_id is already a member. */
gboolean pt_tree_rename_root (PtTree *tree, const char *new_id);

/* Removes a non-root @peer. Each orphaned child keeps its own subtree and is
 * re-placed; one PtMove per orphan is appended to @moves (if not NULL).
 * An orphan for which no slot is left (every other member full or a leaf)
 * leaves the tree with its subtree: their ids are appended to @dropped (if
 * not NULL; g_free them). Returns FALSE if @peer is unknown or is the root
 * (use pt_tree_free). */
gboolean pt_tree_remove_full (PtTree *tree, const char *peer, GArray *moves, GPtrArray *dropped);
/* Makes @peer (not the root) a leaf and places each of its children again
 * elsewhere, with its subtree, as pt_tree_remove_full does for orphans (a
 * relay its children caught forwarding forged data keeps its own place but
 * relays no more). FALSE if @peer is unknown or the root. */
gboolean pt_tree_demote (PtTree *tree, const char *peer, GArray *moves, GPtrArray *dropped);
/* pt_tree_remove_full without @dropped. */
gboolean pt_tree_remove (PtTree *tree, const char *peer, GArray *moves);

/* Visits peers in breadth-first order. */
typedef void (*PtTreeFunc) (const char *peer, const char *parent, guint depth, gpointer user_data);
void pt_tree_foreach (const PtTree *tree, PtTreeFunc func, gpointer user_data);

/* Checks every invariant: acyclic, every peer reachable from the root,
 * parent/child links agree, child counts within k and k1 (declared limits are
 * soft: see pt_tree_set_capacity), leaves childless, nobody listed twice,
 * index size equals reachable size. Sets @error on the first violation. */
gboolean pt_tree_check (const PtTree *tree, GError **error);

G_END_DECLS
